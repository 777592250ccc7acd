// The subscribe, fetch, merge and reconnect flow of gopush.js, in node with
// a fake WebSocket and a fake fetch (lookup: 'fetch').
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const GoPush = require('../gopush.js');

const sockets = [];
class FakeWebSocket {
  constructor (url) {
    this.url = url;
    this.sent = [];
    this.closed = false;
    sockets.push(this);
  }

  send (data) { this.sent.push(data); }

  close () {
    if (this.closed) { return; }
    this.closed = true;
    setTimeout(() => this.onclose && this.onclose({ code: 1006 }), 0);
  }

  frame (text) { this.onmessage({ data: text }); }
}

const calls = [];
let msgGet = null; // function (url) returning the answer of /msg/get
function fakeFetch (url) {
  calls.push(url);
  const u = new URL(url);
  let body;
  if (u.pathname === '/1/server/get') {
    body = Promise.resolve('{"ret":0,"data":{"server":"comet' + sockets.length + ':6968"}}');
  } else if (u.pathname === '/msg/get') {
    body = Promise.resolve(msgGet(u));
  } else {
    body = Promise.resolve('{"ret":65534}');
  }
  return Promise.resolve({ ok: true, status: 200, text: () => body });
}

function until (cond, what) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 5000;
    (function poll () {
      if (cond()) { return resolve(); }
      if (Date.now() > deadline) { return reject(new Error('timed out waiting for ' + what)); }
      setTimeout(poll, 5);
    })();
  });
}

const old = (mid, msg, gid) => JSON.stringify({ msg: JSON.stringify(msg), mid: 0, gid: gid || 0 }).replace('"mid":0', '"mid":' + mid);

test('subscribe, merge online messages into the fetch, reconnect with exact mids', async (t) => {
  global.WebSocket = FakeWebSocket;
  global.fetch = fakeFetch;
  const got = [];
  const opened = [];
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  msgGet = (u) => held.then(() => JSON.stringify({
    ret: 0,
    data: { msgs: [old('17000000000000001', { n: 1 }), old('17000000000000003', { n: 3 })], pmsgs: [old('17000000000000002', 'all', 1)] }
  }));
  const c = new GoPush({
    web: 'http://web.example:8090/', key: 'Terry Mao', token: 't', lookup: 'fetch', minBackoff: 10, maxBackoff: 20,
    onMessage: (m) => got.push(m.gid + ':' + m.mid + ':' + m.raw),
    onOpen: (s) => opened.push(s)
  });
  t.after(() => c.close()); // a failed assertion must not leave timers behind
  c.start();
  await until(() => sockets.length === 1, 'a websocket');
  const ws = sockets[0];
  assert.strictEqual(ws.url, 'ws://comet0:6968/sub?key=Terry%20Mao&heartbeat=30&token=t&ver=1.0.5');
  ws.frame('+h\r\n');
  assert.deepStrictEqual(opened, ['comet0:6968']);
  await until(() => calls.some((u) => u.includes('/msg/get')), 'the offline fetch');
  const fetchURL = new URL(calls.find((u) => u.includes('/msg/get')));
  assert.strictEqual(fetchURL.searchParams.get('mid'), '0');
  assert.strictEqual(fetchURL.searchParams.get('pmid'), '0');
  // During the fetch: an unstored message, and a copy of a stored one.
  ws.frame('{"msg":{"online":2},"mid":17000000000000002,"gid":0}');
  ws.frame('{"msg":{"n":3},"mid":17000000000000003,"gid":0}');
  assert.deepStrictEqual(got, [], 'nothing is delivered before the fetch');
  release();
  await until(() => got.length === 4, 'four messages');
  assert.deepStrictEqual(got, [
    '0:17000000000000001:{"n":1}',
    '1:17000000000000002:"all"', // equal mids: the fetched one first
    '0:17000000000000002:{"online":2}',
    '0:17000000000000003:{"n":3}'
  ]);
  ws.frame('{"msg":{"n":3},"mid":17000000000000003,"gid":0}'); // duplicate
  ws.frame('{"msg":{"n":4},"mid":17000000000000004,"gid":0}');
  assert.strictEqual(got[got.length - 1], '0:17000000000000004:{"n":4}');
  assert.strictEqual(got.length, 5);

  // The comet goes away: the client comes back and asks from the exact mids.
  msgGet = () => '{"ret":0,"data":{"msgs":[' + JSON.stringify(old('17000000000000005', { n: 5 })) + ']}}';
  ws.close();
  await until(() => sockets.length === 2, 'a second websocket');
  sockets[1].frame('+h\r\n');
  await until(() => got.length === 6, 'the missed message');
  assert.strictEqual(got[5], '0:17000000000000005:{"n":5}');
  const second = new URL(calls.filter((u) => u.includes('/msg/get'))[1]);
  assert.strictEqual(second.searchParams.get('mid'), '17000000000000004');
  assert.strictEqual(second.searchParams.get('pmid'), '17000000000000002');
  assert.strictEqual(c.connects, 2);

  // An error reply is a failure too; close() stops everything.
  sockets[1].frame('-n\r\n');
  await until(() => sockets.length === 3, 'a third websocket');
  c.close();
  assert.ok(sockets[2].closed);
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.strictEqual(sockets.length, 3, 'no reconnect after close()');
});
