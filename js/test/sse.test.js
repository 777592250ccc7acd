// The Server-Sent Events transport of gopush.js and the fallback from
// WebSocket, in node with fake WebSocket, EventSource and fetch.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const GoPush = require('../gopush.js');

let opened = []; // every WebSocket and EventSource, in order
class FakeWebSocket {
  constructor (url) {
    this.kind = 'ws';
    this.url = url;
    this.closed = false;
    opened.push(this);
  }

  send () {}
  close () { this.closed = true; }
  // refuse is what a proxy that breaks WebSocket looks like to a page.
  refuse () { this.onerror && this.onerror({}); }
}

class FakeEventSource {
  constructor (url) {
    this.kind = 'sse';
    this.url = url;
    this.closed = false;
    opened.push(this);
  }

  close () { this.closed = true; }
  open () { this.onopen && this.onopen({}); }
  event (data) { this.onmessage({ data: data }); }
  error () { this.onerror && this.onerror({}); }
}

let msgs = []; // what /msg/get answers: old-form strings
let fetches = [];
function fakeFetch (url) {
  const u = new URL(url);
  let body = '{"ret":65534}';
  if (u.pathname === '/1/server/get') {
    body = '{"ret":0,"data":{"server":"127.0.0.1:6968"}}';
  } else if (u.pathname === '/msg/get') {
    fetches.push(u);
    const after = u.searchParams.get('mid');
    const list = msgs.filter((m) => JSON.parse(m).mid > Number(after));
    body = JSON.stringify({ ret: 0, data: { msgs: list } });
  }
  return Promise.resolve({ ok: true, status: 200, text: () => Promise.resolve(body) });
}

function until (cond, what) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 5000;
    (function poll () {
      if (cond()) { return resolve(); }
      if (Date.now() > deadline) { return reject(new Error('timed out waiting for ' + what)); }
      setTimeout(poll, 2);
    })();
  });
}

// Mids below 2^53 here, so that the fake can compare them as numbers.
const stored = (mid, n) => JSON.stringify({ msg: JSON.stringify({ n: n }), mid: mid, gid: 0 });
const frame = (mid, n) => JSON.stringify({ msg: { n: n }, mid: mid, gid: 0 });

function reset () {
  opened = [];
  msgs = [];
  fetches = [];
  global.fetch = fakeFetch;
  global.WebSocket = FakeWebSocket;
  global.EventSource = FakeEventSource;
}

test('transport sse: the stream, the offline fetch, a reconnect, each mid once', async (t) => {
  reset();
  const got = [];
  const c = new GoPush({
    web: 'http://web:8090', key: 'k 1', lookup: 'fetch', transport: 'sse', minBackoff: 5, maxBackoff: 10,
    cometURL: 'https://edge.example/comet/{server}/',
    onMessage: (m) => got.push(m.mid)
  });
  t.after(() => c.close());
  assert.strictEqual(c.transport, 'sse');
  msgs = [stored(101, 1)];
  c.start();
  await until(() => opened.length === 1, 'an event source');
  const es = opened[0];
  assert.strictEqual(es.kind, 'sse');
  assert.strictEqual(es.url, 'https://edge.example/comet/127.0.0.1:6968/sse?key=k%201&heartbeat=30&token=&ver=1.0.5');
  es.open();
  es.event(frame(102, 2)); // online during the fetch: held until it ends
  await until(() => got.length === 2, 'the stored and the online message');
  assert.deepStrictEqual(got, ['101', '102']);
  es.event(frame(102, 2)); // duplicate
  es.event(frame(103, 3));
  assert.deepStrictEqual(got, ['101', '102', '103']);

  // A proxy closes the stream; pushed meanwhile: 104 (stored).
  msgs = [stored(101, 1), stored(102, 2), stored(103, 3), stored(104, 4)];
  es.error();
  assert.ok(es.closed, 'the client closes the EventSource itself');
  await until(() => opened.length === 2, 'a second event source');
  opened[1].event(frame(105, 5));
  opened[1].open();
  await until(() => got.length === 5, 'the missed and the new message');
  assert.deepStrictEqual(got, ['101', '102', '103', '104', '105']);
  assert.strictEqual(fetches[1].searchParams.get('mid'), '103');
  assert.strictEqual(c.connects, 2);
});

test('transport auto: after fallbackAfter refused WebSockets it uses SSE, exactly once across the switch', async (t) => {
  reset();
  const got = [];
  const c = new GoPush({
    web: 'http://web:8090', key: 'k', lookup: 'fetch', minBackoff: 5, maxBackoff: 10, fallbackAfter: 2,
    onMessage: (m) => got.push(m.mid)
  });
  t.after(() => c.close());
  assert.strictEqual(c.transport, 'websocket');
  c.start();
  // The first WebSocket works for a while.
  await until(() => opened.length === 1, 'a websocket');
  assert.strictEqual(opened[0].url, 'ws://127.0.0.1:6968/sub?key=k&heartbeat=30&token=&ver=1.0.5');
  opened[0].onmessage({ data: '+h\r\n' });
  await until(() => fetches.length === 1, 'the fetch');
  opened[0].onmessage({ data: frame(201, 1) });
  await until(() => got.length === 1, 'a message');
  // Then a proxy starts refusing WebSocket: two attempts fail.
  opened[0].refuse();
  await until(() => opened.length === 2, 'a second websocket');
  opened[1].refuse();
  await until(() => opened.length === 3, 'a third attempt');
  assert.strictEqual(opened[1].kind, 'ws');
  assert.strictEqual(opened[2].kind, 'ws', 'one failure after a success is not enough');
  opened[2].refuse();
  await until(() => opened.length === 4, 'a fourth attempt');
  assert.strictEqual(opened[3].kind, 'sse');
  assert.strictEqual(c.transport, 'sse');
  assert.strictEqual(opened[3].url, 'http://127.0.0.1:6968/sse?key=k&heartbeat=30&token=&ver=1.0.5');
  msgs = [stored(201, 1), stored(202, 2)];
  opened[3].event(frame(202, 2));
  opened[3].event(frame(203, 3));
  opened[3].open();
  await until(() => got.length === 3, 'the missed message and the new one');
  assert.deepStrictEqual(got, ['201', '202', '203']);
  assert.strictEqual(fetches[fetches.length - 1].searchParams.get('mid'), '201');
});

test('transport auto without WebSocket starts with SSE; a bad transport is refused', async (t) => {
  reset();
  delete global.WebSocket;
  const c = new GoPush({ web: 'http://web:8090', key: 'k', lookup: 'fetch', minBackoff: 5 });
  t.after(() => c.close());
  assert.strictEqual(c.transport, 'sse');
  c.start();
  await until(() => opened.length === 1, 'an event source');
  assert.strictEqual(opened[0].kind, 'sse');
  assert.throws(() => new GoPush({ web: 'w', key: 'k', transport: 'longpoll' }), /transport/);
  assert.throws(() => new GoPush({ web: 'w', key: 'k', fallbackAfter: 0 }), /fallbackAfter/);
});

test('an event stream that never opens is given up after timeout', async (t) => {
  reset();
  const c = new GoPush({ web: 'http://web:8090', key: 'k', lookup: 'fetch', transport: 'sse', timeout: 30, minBackoff: 5 });
  t.after(() => c.close());
  c.start();
  await until(() => opened.length === 2, 'a second attempt after the first timed out');
  assert.ok(opened[0].closed);
});

test('transport auto: a WebSocket that gets through but is refused (-n) is not a reason to switch', async (t) => {
  reset();
  const c = new GoPush({ web: 'http://web:8090', key: 'k', lookup: 'fetch', minBackoff: 5, maxBackoff: 10, fallbackAfter: 2 });
  t.after(() => c.close());
  c.start();
  for (let i = 0; i < 3; i++) {
    await until(() => opened.length === i + 1, 'attempt ' + (i + 1));
    opened[i].onopen && opened[i].onopen({});
    opened[i].onmessage({ data: '-n\r\n' });
  }
  await until(() => opened.length === 4, 'a fourth attempt');
  assert.deepStrictEqual(opened.map((o) => o.kind), ['ws', 'ws', 'ws', 'ws']);
  assert.strictEqual(c.transport, 'websocket');
});
