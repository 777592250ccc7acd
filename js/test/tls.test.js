// gopush.js over TLS: on an https page (or with wsScheme 'wss') it asks web
// for p=3 and opens wss://; a full wss:// URL answered by web (comets
// behind one nginx TLS port) is used as it is.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const GoPush = require('../gopush.js');

function run (t, opts, server) {
  const sockets = [];
  const asked = [];
  global.WebSocket = class {
    constructor (url) { this.url = url; sockets.push(this); }
    send () {}
    close () {}
  };
  global.fetch = (url) => {
    const u = new URL(url);
    asked.push(u.searchParams.get('p'));
    const body = u.pathname === '/1/server/get' ? JSON.stringify({ ret: 0, data: { server } }) : '{"ret":0}';
    return Promise.resolve({ ok: true, status: 200, text: () => Promise.resolve(body) });
  };
  const c = new GoPush(Object.assign({ web: 'https://web.example', key: 'k', lookup: 'fetch' }, opts));
  t.after(() => c.close());
  c.start();
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 5000;
    (function poll () {
      if (sockets.length > 0) { return resolve({ url: sockets[0].url, p: asked[0] }); }
      if (Date.now() > deadline) { return reject(new Error('no websocket')); }
      setTimeout(poll, 5);
    })();
  });
}

test('wss asks p=3 and builds wss://host:port/sub', async (t) => {
  const got = await run(t, { wsScheme: 'wss' }, 'comet1.example:6443');
  assert.strictEqual(got.p, '3');
  assert.strictEqual(got.url, 'wss://comet1.example:6443/sub?key=k&heartbeat=30&token=&ver=1.0.5');
});

test('a wss:// URL from web is used as it is', async (t) => {
  const got = await run(t, { wsScheme: 'wss' }, 'wss://push.example/c/node1/sub');
  assert.strictEqual(got.url, 'wss://push.example/c/node1/sub?key=k&heartbeat=30&token=&ver=1.0.5');
});

test('plain ws still asks p=1', async (t) => {
  const got = await run(t, { wsScheme: 'ws' }, 'comet1.example:6968');
  assert.strictEqual(got.p, '1');
  assert.strictEqual(got.url, 'ws://comet1.example:6968/sub?key=k&heartbeat=30&token=&ver=1.0.5');
});
