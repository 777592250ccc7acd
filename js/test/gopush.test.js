// Unit tests of gopush.js's mid handling, run with `node --test js/test/`
// (js/browser_test.go runs them as part of `go test ./js/`).
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const GoPush = require('../gopush.js');

test('cmpMid orders digit strings as integers, beyond 2^53', () => {
  assert.strictEqual(GoPush.cmpMid('17000000000000001', '17000000000000002'), -1);
  assert.strictEqual(GoPush.cmpMid('17000000000000002', '17000000000000001'), 1);
  assert.strictEqual(GoPush.cmpMid('17000000000000001', '17000000000000001'), 0);
  assert.strictEqual(GoPush.cmpMid('9', '10'), -1);
  assert.strictEqual(GoPush.cmpMid('0', '17000000000000001'), -1);
  // as numbers these two are equal; as mids they are not
  assert.strictEqual(Number('9007199254740993'), Number('9007199254740992'));
  assert.strictEqual(GoPush.cmpMid('9007199254740993', '9007199254740992'), 1);
});

test('parseFrame keeps the exact mid of a pushed message', () => {
  const m = GoPush.parseFrame('{"msg":{"test":1},"mid":17000000000000001,"gid":0}');
  assert.strictEqual(m.mid, '17000000000000001');
  assert.deepStrictEqual(m.msg, { test: 1 });
  assert.strictEqual(m.raw, '{"test":1}');
  assert.strictEqual(m.gid, 0);
});

test('a mid inside the message itself is not taken for the mid', () => {
  const m = GoPush.parseFrame('{"msg":{"mid":5,"x":["mid",{"mid":7}]},"mid":17000000000000003,"gid":0}');
  assert.strictEqual(m.mid, '17000000000000003');
  const s = GoPush.parseFrame('{"msg":"\\"mid\\":9","mid":17000000000000004,"gid":0}');
  assert.strictEqual(s.mid, '17000000000000004');
  assert.strictEqual(s.msg, '"mid":9');
});

test('key order and spaces do not matter', () => {
  const m = GoPush.parseFrame('{ "gid" : 0 , "mid" : 17000000000000005 , "msg" : [1] }');
  assert.strictEqual(m.mid, '17000000000000005');
});

test('parseOld reads a stored message of /msg/get', () => {
  const m = GoPush.parseOld('{"msg":"{\\"test\\":1}","mid":13996474938346193,"gid":0}');
  assert.strictEqual(m.mid, '13996474938346193');
  assert.deepStrictEqual(m.msg, { test: 1 });
  assert.strictEqual(m.raw, '{"test":1}');
});

test('bad frames are refused', () => {
  for (const bad of ['not json', '{"msg":1}', '{"msg":1,"mid":"12"}', '{"msg":1,"mid":-3}', '{"msg":1,"mid":0}', '[1]']) {
    assert.throws(() => GoPush.parseFrame(bad), bad);
  }
});

test('options are checked', () => {
  assert.throws(() => new GoPush({ key: 'k' }), /web/);
  assert.throws(() => new GoPush({ web: 'http://x' }), /key/);
  assert.throws(() => new GoPush({ web: 'http://x', key: 'k', heartbeat: 5 }), /heartbeat/);
  assert.throws(() => new GoPush({ web: 'http://x', key: 'k', lastMid: 1.5 }), /lastMid/);
  assert.throws(() => new GoPush({ web: 'http://x', key: 'k', lookup: 'xhr' }), /lookup/);
  const c = new GoPush({ web: 'http://x/', key: 'k', lastMid: '17000000000000001' });
  assert.strictEqual(c.opts.web, 'http://x');
  assert.strictEqual(c.lastMid, '17000000000000001');
});

test('delivery drops what is not newer than the last mid', () => {
  const got = [];
  const c = new GoPush({ web: 'http://x', key: 'k', lastMid: '17000000000000002', onMessage: (m) => got.push(m.mid) });
  for (const mid of ['17000000000000001', '17000000000000002', '17000000000000003', '17000000000000003', '17000000000000004']) {
    c._deliver({ mid, gid: 0, msg: 1, raw: '1' });
  }
  assert.deepStrictEqual(got, ['17000000000000003', '17000000000000004']);
  assert.strictEqual(c.lastMid, '17000000000000004');
});

test('public messages keep their own last mid', () => {
  const got = [];
  const c = new GoPush({ web: 'http://x', key: 'k', lastPublicMid: '17000000000000001', onMessage: (m) => got.push(m.gid + ':' + m.mid) });
  c._deliver(GoPush.parseFrame('{"msg":1,"mid":17000000000000010,"gid":0}'));
  c._deliver(GoPush.parseFrame('{"msg":1,"mid":17000000000000005,"gid":1}')); // below the private one: new all the same
  c._deliver(GoPush.parseFrame('{"msg":1,"mid":17000000000000001,"gid":1}')); // already had
  c._deliver(GoPush.parseFrame('{"msg":1,"mid":17000000000000005,"gid":1}')); // duplicate
  c._deliver(GoPush.parseFrame('{"msg":1,"mid":17000000000000011,"gid":0}'));
  assert.deepStrictEqual(got, ['0:17000000000000010', '1:17000000000000005', '0:17000000000000011']);
  assert.strictEqual(c.lastMid, '17000000000000011');
  assert.strictEqual(c.lastPublicMid, '17000000000000005');
});

test('stableSort keeps equal mids in their order', () => {
  const list = [{ mid: '3', s: 'fetched' }, { mid: '1', s: 'a' }, { mid: '3', s: 'online' }, { mid: '2', s: 'b' }];
  GoPush.stableSort(list, (a, b) => GoPush.cmpMid(a.mid, b.mid));
  assert.deepStrictEqual(list.map((m) => m.mid + m.s), ['1a', '2b', '3fetched', '3online']);
});
