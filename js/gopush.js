/*
 * gopush.js: a browser subscriber of a gopush cluster. No build step, no
 * dependencies; include it with a <script> tag and use window.GoPush.
 *
 *   var sub = new GoPush({
 *     web: 'http://push.example.com:8090',   // web's public API
 *     key: 'Terry-Mao',
 *     onMessage: function (m) { console.log(m.mid, m.msg); }
 *   });
 *   sub.start();
 *   ...
 *   sub.close();
 *
 * What it does, in a loop until close():
 *   1. asks web which comet serves the key (/1/server/get), by JSONP
 *      (works from any origin) or by fetch (same origin or CORS): p=1,
 *      or, on an https page (or with wsScheme 'wss'), p=3 for the comet's
 *      TLS listener, since a browser refuses ws:// there. web answers
 *      host:port, or for p=3 possibly a full wss://.../sub URL (comets
 *      behind one nginx TLS port), which is used as it is (its /sse
 *      sibling for Server-Sent Events);
 *   2. opens a WebSocket to that comet (/sub?key=&heartbeat=&token=&ver=)
 *      and waits for "+h", or, where WebSocket cannot be used, a
 *      Server-Sent Events stream (/sse?key=&heartbeat=&token=&ver=, an
 *      EventSource) and waits for it to open;
 *   3. fetches the messages it missed (stored ones newer than the last mid
 *      it delivered) and delivers them, then the online ones;
 *   4. sends a heartbeat "h" every `heartbeat` seconds; a comet silent for
 *      1.5 heartbeats is left;
 *   5. on any close or error waits a backoff (doubling, with jitter) and
 *      starts again at 1.
 * Transports: with transport 'auto' (the default) the client starts with
 * WebSocket and switches to Server-Sent Events when the browser has no
 * WebSocket, or after `fallbackAfter` attempts in a row that reached a comet
 * but never subscribed (a proxy that breaks WebSocket); after as many failed
 * SSE attempts it tries WebSocket again. 'websocket' or 'sse' uses only that
 * one. The transport in use is in sub.transport.
 *
 * Each message is delivered once, in ascending mid order, whatever the
 * transport and across a switch: the last mids are the client's, not the
 * connection's. Private messages
 * (gid 0, pushed to the key) and public ones (gid 1, broadcast to all by
 * /1/admin/push/all) have mids of two sequences, so each keeps its own last
 * mid (lastMid, lastPublicMid); order and deduplication hold within each.
 *
 * Mids are 64-bit integers above 2^53, which a JavaScript number cannot hold
 * exactly. This client never turns a mid into a number: it reads mids as
 * digit strings from the raw text of each frame and answer, compares them as
 * strings, and sends them back as they were. m.mid is such a string; use
 * BigInt(m.mid) for arithmetic. The offline fetch uses web's unversioned
 * /msg/get, whose messages are JSON strings: their mids survive a JSONP
 * call intact, where /1/msg/get's numbers would be rounded by the browser.
 */
(function (root) {
  'use strict';

  var DEFAULTS = {
    web: '',            // base URL of web's public API (required)
    key: '',            // subscriber key (required)
    token: '',          // token, when comet has auth = true
    heartbeat: 30,      // seconds; comet refuses less than 30
    ver: '1.0.5',       // client version; non-empty selects the current message form
    lastMid: '0',       // mid (digit string) of the newest private message already seen
    lastPublicMid: '0', // the same for public messages (gid 1)
    lookup: 'jsonp',    // 'jsonp' or 'fetch': how web is called
    wsScheme: '',       // 'ws' (p=1) or 'wss' (p=3, TLS); default: wss on https pages
    transport: 'auto',  // 'auto' (WebSocket, falling back to SSE), 'websocket' or 'sse'
    fallbackAfter: 2,   // failed attempts in a row before 'auto' switches transport
    cometURL: '',       // base URL of a comet, '{server}' standing for its host:port
                        // (e.g. 'https://push.example.com/comet/{server}' behind a
                        // proxy); default: http(s)://{server}, ws(s):// for WebSocket
    minBackoff: 500,    // ms
    maxBackoff: 30000,  // ms
    timeout: 10000,     // ms, for one call to web and for the subscribe
    onMessage: null,    // function ({mid, gid, msg, raw})
    onOpen: null,       // function (cometAddress) after each subscribe
    onClose: null,      // function (reason) after each lost connection
    onError: null       // function (Error)
  };

  var jsonpSeq = 0;

  // hasWebSocket tells whether this browser can open a WebSocket at all.
  function hasWebSocket() {
    return typeof WebSocket === 'function' || typeof WebSocket === 'object';
  }

  // --- mids as digit strings ---------------------------------------------

  // isMid tells whether s is a non-negative integer without leading zeros.
  function isMid(s) {
    return typeof s === 'string' && /^(0|[1-9][0-9]*)$/.test(s);
  }

  // cmpMid compares two mids given as digit strings: -1, 0 or 1.
  function cmpMid(a, b) {
    if (a.length !== b.length) {
      return a.length < b.length ? -1 : 1;
    }
    return a < b ? -1 : (a > b ? 1 : 0);
  }

  // stableSort sorts list in place with cmp, keeping equal elements in
  // their order (Array.prototype.sort is stable only since ES2019).
  function stableSort(list, cmp) {
    for (var i = 0; i < list.length; i++) { list[i] = { v: list[i], i: i }; }
    list.sort(function (a, b) { return cmp(a.v, b.v) || a.i - b.i; });
    for (var j = 0; j < list.length; j++) { list[j] = list[j].v; }
    return list;
  }

  // rawMember returns the raw text of the value of member `name` of the
  // top-level object in the JSON `text`, or null. Members of nested objects
  // (inside "msg", say) are skipped, so a pushed message that has its own
  // "mid" cannot fool it.
  function rawMember(text, name) {
    var depth = 0, i = 0, n = text.length;
    while (i < n) {
      var c = text.charAt(i);
      if (c === '"') {
        var j = i + 1;
        while (j < n && text.charAt(j) !== '"') {
          j += text.charAt(j) === '\\' ? 2 : 1;
        }
        var s = text.slice(i + 1, j);
        i = j + 1;
        if (depth === 1 && s === name) {
          var k = i;
          while (k < n && /\s/.test(text.charAt(k))) { k++; }
          if (text.charAt(k) === ':') {
            k++;
            while (k < n && /\s/.test(text.charAt(k))) { k++; }
            var m = /^-?[0-9]+/.exec(text.slice(k, k + 32));
            return m ? m[0] : null;
          }
        }
        continue;
      }
      if (c === '{' || c === '[') { depth++; } else if (c === '}' || c === ']') { depth--; }
      i++;
    }
    return null;
  }

  // parseFrame turns one message frame (current form) into
  // {mid, gid, msg, raw}; it throws on a malformed frame.
  function parseFrame(text) {
    var obj = JSON.parse(text);
    var mid = rawMember(text, 'mid');
    if (!obj || typeof obj !== 'object' || !isMid(mid) || mid === '0') {
      throw new Error('gopush: message without a valid mid: ' + text.slice(0, 200));
    }
    return { mid: mid, gid: obj.gid === 1 ? 1 : 0, msg: obj.msg, raw: JSON.stringify(obj.msg) };
  }

  // parseOld turns one old-form message (msg is the pushed JSON as a
  // string), as /msg/get lists them, into {mid, gid, msg, raw}.
  function parseOld(text) {
    var obj = JSON.parse(text);
    var mid = rawMember(text, 'mid');
    if (!obj || typeof obj !== 'object' || !isMid(mid) || mid === '0') {
      throw new Error('gopush: stored message without a valid mid: ' + text.slice(0, 200));
    }
    var raw = typeof obj.msg === 'string' ? obj.msg : JSON.stringify(obj.msg);
    var msg;
    try { msg = JSON.parse(raw); } catch (e) { msg = raw; }
    return { mid: mid, gid: obj.gid === 1 ? 1 : 0, msg: msg, raw: raw };
  }

  // --- calls to web ------------------------------------------------------

  function query(params) {
    var parts = [];
    for (var k in params) {
      if (Object.prototype.hasOwnProperty.call(params, k)) {
        parts.push(encodeURIComponent(k) + '=' + encodeURIComponent(params[k]));
      }
    }
    return parts.join('&');
  }

  // jsonp calls url with a callback parameter named cbParam and calls
  // done(err, answer) once.
  function jsonp(url, cbParam, timeout, done) {
    var name = '__gopush_cb_' + (++jsonpSeq) + '_' + Math.floor(Math.random() * 1e9);
    var script = document.createElement('script');
    var finished = false;
    function finish(err, ans) {
      if (finished) { return; }
      finished = true;
      clearTimeout(timer);
      // A late answer must not fail on a missing function.
      root[name] = function () { try { delete root[name]; } catch (e) { root[name] = undefined; } };
      if (script.parentNode) { script.parentNode.removeChild(script); }
      done(err, ans);
    }
    var timer = setTimeout(function () { finish(new Error('gopush: no answer from ' + url)); }, timeout);
    root[name] = function (ans) { finish(null, ans); };
    script.onerror = function () { finish(new Error('gopush: cannot load ' + url)); };
    script.src = url + (url.indexOf('?') < 0 ? '?' : '&') + encodeURIComponent(cbParam) + '=' + name;
    script.async = true;
    (document.head || document.documentElement).appendChild(script);
  }

  // fetchJSON gets url and calls done(err, answer) with the parsed answer.
  function fetchJSON(url, timeout, done) {
    var ctl = typeof AbortController === 'function' ? new AbortController() : null;
    var timer = setTimeout(function () { if (ctl) { ctl.abort(); } }, timeout);
    fetch(url, ctl ? { signal: ctl.signal } : {}).then(function (res) {
      if (!res.ok) { throw new Error('gopush: ' + url + ': HTTP ' + res.status); }
      return res.text();
    }).then(function (text) {
      clearTimeout(timer);
      done(null, JSON.parse(text));
    }, function (err) {
      clearTimeout(timer);
      done(err instanceof Error ? err : new Error(String(err)));
    });
  }

  // --- the subscriber ----------------------------------------------------

  function GoPush(options) {
    var o = {};
    for (var k in DEFAULTS) {
      if (Object.prototype.hasOwnProperty.call(DEFAULTS, k)) {
        o[k] = options && options[k] !== undefined ? options[k] : DEFAULTS[k];
      }
    }
    if (!o.web) { throw new Error('gopush: option web (base URL of web) is required'); }
    if (!o.key) { throw new Error('gopush: option key is required'); }
    if (!(o.heartbeat >= 30)) { throw new Error('gopush: heartbeat must be at least 30 seconds'); }
    o.lastMid = String(o.lastMid);
    o.lastPublicMid = String(o.lastPublicMid);
    if (!isMid(o.lastMid)) { throw new Error('gopush: lastMid must be a digit string'); }
    if (!isMid(o.lastPublicMid)) { throw new Error('gopush: lastPublicMid must be a digit string'); }
    if (o.lookup !== 'jsonp' && o.lookup !== 'fetch') { throw new Error("gopush: lookup must be 'jsonp' or 'fetch'"); }
    if (o.transport !== 'auto' && o.transport !== 'websocket' && o.transport !== 'sse') {
      throw new Error("gopush: transport must be 'auto', 'websocket' or 'sse'");
    }
    if (!(o.fallbackAfter >= 1)) { throw new Error('gopush: fallbackAfter must be at least 1'); }
    o.web = String(o.web).replace(/\/+$/, '');
    this.opts = o;
    this.lastMid = o.lastMid;   // newest private mid delivered, a digit string
    this.lastPublicMid = o.lastPublicMid; // newest public mid delivered
    this.server = '';           // comet address while subscribed
    this.connects = 0;          // successful subscribes so far
    this._ws = null;
    this._es = null;
    this.transport = o.transport === 'sse' || (o.transport === 'auto' && !hasWebSocket()) ? 'sse' : 'websocket';
    this._failures = 0;         // attempts in a row on this transport that never subscribed
    this._attempt = null;       // {up} of the connection being opened
    this._timers = {};
    this._backoff = o.minBackoff;
    this._running = false;
    this._gen = 0;              // bumps on every new connection attempt
  }

  GoPush.prototype.start = function () {
    if (this._running) { return this; }
    this._running = true;
    this._connect();
    return this;
  };

  GoPush.prototype.close = function () {
    this._running = false;
    this._gen++;
    this._clearTimers();
    this._closeConn();
    this.server = '';
  };

  // _closeConn closes the WebSocket or EventSource, if any.
  GoPush.prototype._closeConn = function () {
    if (this._ws) {
      try { this._ws.close(); } catch (e) { /* already closed */ }
      this._ws = null;
    }
    if (this._es) {
      try { this._es.close(); } catch (e) { /* already closed */ }
      this._es = null;
    }
  };

  GoPush.prototype._clearTimers = function () {
    for (var k in this._timers) {
      if (Object.prototype.hasOwnProperty.call(this._timers, k)) {
        clearTimeout(this._timers[k]);
        clearInterval(this._timers[k]);
      }
    }
    this._timers = {};
  };

  GoPush.prototype._emit = function (name, arg) {
    var f = this.opts[name];
    if (typeof f === 'function') {
      try { f.call(this, arg); } catch (e) {
        if (root.console) { root.console.error('gopush: ' + name + ' threw', e); }
      }
    }
  };

  GoPush.prototype._call = function (path, params, cbParam, done) {
    var url = this.opts.web + path + '?' + query(params);
    var finish = function (err, ans) {
      if (err) { return done(err); }
      if (!ans || typeof ans.ret !== 'number') { return done(new Error('gopush: ' + path + ': bad answer')); }
      if (ans.ret !== 0) {
        var e = new Error('gopush: ' + path + ': ret ' + ans.ret + (ans.ret === 1001 ? ' (no comet serves the key)' : ''));
        e.ret = ans.ret;
        return done(e);
      }
      done(null, ans.data || {});
    };
    if (this.opts.lookup === 'fetch') {
      fetchJSON(url, this.opts.timeout, finish);
    } else {
      jsonp(url, cbParam, this.opts.timeout, finish);
    }
  };

  // _fail ends the current attempt (gen) and schedules the next one.
  GoPush.prototype._fail = function (gen, err) {
    if (gen !== this._gen || !this._running) { return; }
    this._gen++;
    this._clearTimers();
    this._closeConn();
    this._countFailure();
    var wasUp = this.server !== '';
    this.server = '';
    if (err) { this._emit('onError', err); }
    if (wasUp) { this._emit('onClose', err ? err.message : 'closed'); }
    var wait = this._backoff * (0.8 + Math.random() * 0.4);
    this._backoff = Math.min(this._backoff * 2, this.opts.maxBackoff);
    var self = this;
    this._timers.retry = setTimeout(function () { self._connect(); }, wait);
  };

  GoPush.prototype._connect = function () {
    if (!this._running) { return; }
    var self = this, gen = ++this._gen, o = this.opts;
    this._call('/1/server/get', { k: o.key, p: this._secure() ? 3 : 1 }, 'cb', function (err, data) {
      if (gen !== self._gen) { return; }
      if (err) { return self._fail(gen, err); }
      var server = typeof data.server === 'string' ? data.server : '';
      if (!server) { return self._fail(gen, new Error('gopush: /1/server/get: no server in the answer')); }
      self._open(gen, server);
    });
  };

  // _countFailure counts an attempt whose transport did not get through
  // (the connection was opened but never came up: no WebSocket handshake,
  // no event stream), and with transport 'auto' switches to the other
  // transport after fallbackAfter of them in a row. A comet that answers
  // over WebSocket, even with an error (-n during a migration), shows that
  // WebSocket gets through.
  GoPush.prototype._countFailure = function () {
    var a = this._attempt;
    this._attempt = null;
    if (!a || a.up) { return; }
    this._failures++;
    if (this.opts.transport !== 'auto' || this._failures < this.opts.fallbackAfter) { return; }
    var next = this.transport === 'websocket' ? 'sse' : 'websocket';
    if (next === 'websocket' && !hasWebSocket()) { return; }
    if (next === 'sse' && typeof EventSource !== 'function') { return; }
    this.transport = next;
    this._failures = 0;
  };

  // _subscribed records a successful subscribe on this transport.
  GoPush.prototype._subscribed = function (server) {
    if (this._attempt) { this._attempt.up = true; }
    this._failures = 0;
    this.server = server;
    this.connects++;
    this._backoff = this.opts.minBackoff;
    this._emit('onOpen', server);
  };

  // _secure tells whether to use the comets' TLS listeners (p=3): with
  // wsScheme 'wss', or on an https page unless wsScheme is 'ws'; never with
  // cometURL (the proxy it names reaches the comets).
  GoPush.prototype._secure = function () {
    var o = this.opts;
    if (o.cometURL) { return false; }
    if (o.wsScheme) { return o.wsScheme === 'wss'; }
    return !!(root.location && root.location.protocol === 'https:');
  };

  // _cometBase is the base URL of comet server: the URL web answered
  // (wss://.../sub, without /sub), from the cometURL template, or
  // http(s)://server; ws selects the ws(s) scheme.
  GoPush.prototype._cometBase = function (server, ws) {
    var o = this.opts;
    if (/^wss?:\/\//.test(server)) {
      var b = server.replace(/\/sub$/, '');
      return ws ? b : b.replace(/^ws/, 'http');
    }
    if (!o.cometURL) {
      var tls = this._secure();
      if (ws) { return (tls ? 'wss' : 'ws') + '://' + server; }
      return (tls ? 'https' : 'http') + '://' + server;
    }
    var base = o.cometURL.split('{server}').join(server).replace(/\/+$/, '');
    return ws ? base.replace(/^http/, 'ws') : base;
  };

  GoPush.prototype._open = function (gen, server) {
    this._attempt = { up: false }; // up: the transport got through
    if (this.transport === 'sse') { return this._openSSE(gen, server); }
    return this._openWS(gen, server);
  };

  // _merge hands the fetched messages and those that came online during
  // the fetch to _deliver in mid order. The online messages take their
  // place among the fetched ones (an expire-0 one is in no fetch); the sort
  // is stable, so a fetched copy comes first and the online duplicate is
  // dropped.
  GoPush.prototype._merge = function (missed, pending) {
    var all = missed.concat(pending);
    stableSort(all, function (a, b) { return cmpMid(a.mid, b.mid); });
    for (var i = 0; i < all.length; i++) { this._deliver(all[i]); }
  };

  // _openSSE subscribes over Server-Sent Events: the stream opening is the
  // "+h"; every event is one message in the current form. A refusal is an
  // HTTP error, which EventSource reports as an error without detail.
  GoPush.prototype._openSSE = function (gen, server) {
    var self = this, o = this.opts;
    var url = this._cometBase(server, false) + '/sse?' + query({ key: o.key, heartbeat: o.heartbeat, token: o.token, ver: o.ver });
    var es;
    try { es = new EventSource(url); } catch (e) { return this._fail(gen, e); }
    this._es = es;
    var fetching = true, pending = [];
    this._timers.dead = setTimeout(function () {
      self._fail(gen, new Error('gopush: comet ' + server + ' did not open the event stream'));
    }, o.timeout);
    es.onopen = function () {
      if (gen !== self._gen) { return; }
      clearTimeout(self._timers.dead);
      self._subscribed(server);
      self._fetchMissed(gen, function (missed) {
        fetching = false;
        self._merge(missed, pending);
        pending = [];
      });
    };
    es.onmessage = function (ev) {
      if (gen !== self._gen) { return; }
      var m;
      try { m = parseFrame(typeof ev.data === 'string' ? ev.data : ''); } catch (e) { return self._fail(gen, e); }
      if (fetching) { pending.push(m); } else { self._deliver(m); }
    };
    // EventSource would reconnect by itself, to the same comet; the client
    // starts over instead (the key may have moved, and the offline fetch
    // covers the gap, public messages included).
    es.onerror = function () {
      self._fail(gen, new Error('gopush: event stream from ' + server + ' failed or closed'));
    };
  };

  GoPush.prototype._openWS = function (gen, server) {
    var self = this, o = this.opts;
    var url = this._cometBase(server, true) + '/sub?' + query({ key: o.key, heartbeat: o.heartbeat, token: o.token, ver: o.ver });
    var ws;
    try { ws = new WebSocket(url); } catch (e) {
      // This browser or page cannot open a WebSocket at all.
      if (this.opts.transport === 'auto') { this._failures = this.opts.fallbackAfter; }
      return this._fail(gen, e);
    }
    this._ws = ws;
    var attempt = this._attempt;
    var subscribed = false, fetching = true, pending = [];
    ws.onopen = function () { if (attempt) { attempt.up = true; } };

    function alive() {
      clearTimeout(self._timers.dead);
      var ms = subscribed ? o.heartbeat * 1500 : o.timeout;
      self._timers.dead = setTimeout(function () {
        self._fail(gen, new Error('gopush: comet ' + server + ' is silent'));
      }, ms);
    }
    alive();

    ws.onmessage = function (ev) {
      if (gen !== self._gen) { return; }
      alive();
      var text = typeof ev.data === 'string' ? ev.data : '';
      if (text === '+h\r\n') {
        if (!subscribed) {
          subscribed = true;
          alive();
          self._subscribed(server);
          self._timers.heartbeat = setInterval(function () {
            try { ws.send('h'); } catch (e) { self._fail(gen, e); }
          }, o.heartbeat * 1000);
          self._fetchMissed(gen, function (missed) {
            fetching = false;
            self._merge(missed, pending);
            pending = [];
          });
        }
        return;
      }
      if (/^-[a-z]\r\n$/.test(text)) {
        var err = new Error('gopush: comet ' + server + ' answered ' + text.charAt(1) +
          ({ p: ' (parameter error)', a: ' (token refused)', c: ' (channel not allowed)', n: ' (key not served by this comet)' }[text.charAt(1)] || ''));
        err.code = text.charAt(1);
        return self._fail(gen, err);
      }
      if (!subscribed) { return self._fail(gen, new Error('gopush: a message came before +h')); }
      var m;
      try { m = parseFrame(text); } catch (e) { return self._fail(gen, e); }
      if (fetching) { pending.push(m); } else { self._deliver(m); }
    };
    ws.onerror = function () { self._fail(gen, new Error('gopush: websocket error on ' + server)); };
    ws.onclose = function (ev) { self._fail(gen, new Error('gopush: connection to ' + server + ' closed (' + ev.code + ')')); };
  };

  // _fetchMissed fetches the stored private messages newer than lastMid and
  // the kept public ones newer than lastPublicMid and hands them to next. A
  // failed fetch ends the connection, so nothing online is delivered before
  // what was missed.
  GoPush.prototype._fetchMissed = function (gen, next) {
    var self = this;
    var params = { key: this.opts.key, mid: this.lastMid, pmid: this.lastPublicMid };
    this._call('/msg/get', params, 'callback', function (err, data) {
      if (gen !== self._gen) { return; }
      if (err) { return self._fail(gen, err); }
      var msgs = [];
      try {
        var lists = [[data.msgs || [], 0], [data.pmsgs || [], 1]];
        for (var l = 0; l < lists.length; l++) {
          var list = lists[l][0];
          for (var i = 0; i < list.length; i++) {
            if (typeof list[i] !== 'string') { throw new Error('gopush: /msg/get: message is not a string'); }
            var m = parseOld(list[i]);
            m.gid = lists[l][1];
            msgs.push(m);
          }
        }
      } catch (e) { return self._fail(gen, e); }
      next(msgs);
    });
  };

  GoPush.prototype._deliver = function (m) {
    if (m.gid === 1) {
      if (cmpMid(m.mid, this.lastPublicMid) <= 0) { return; }
      this.lastPublicMid = m.mid;
    } else {
      if (cmpMid(m.mid, this.lastMid) <= 0) { return; }
      this.lastMid = m.mid;
    }
    this._emit('onMessage', m);
  };

  GoPush.cmpMid = cmpMid;
  GoPush.stableSort = stableSort;
  GoPush.rawMember = rawMember;
  GoPush.parseFrame = parseFrame;
  GoPush.parseOld = parseOld;

  if (typeof module === 'object' && module.exports) {
    module.exports = GoPush;
  } else {
    root.GoPush = GoPush;
  }
})(typeof window !== 'undefined' ? window : this);
