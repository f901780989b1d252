// Loaded with `node --require` before loom's ES modules (bin/loom: the daemon, and the CLI from its
// sources). The first `import ... from 'node:http'` of an ES module builds the module's ES namespace by
// reading every export of node:http, and the lazy WebSocket / CloseEvent / MessageEvent getters then
// load undici and http2: ~14 MiB of RSS and ~2.5 MiB of heap in every loom process, and ~70 ms of CPU at
// start, for names loom never uses. Here that namespace is built once, synchronously (require of an ES
// module), while those three getters answer undefined; then the getters are put back, so
// require('node:http').WebSocket still works. Only `import { WebSocket } from 'node:http'` sees undefined.
'use strict';
const http = require('node:http');
const saved = [];
for (const k of ['WebSocket', 'CloseEvent', 'MessageEvent']) {
  const d = Object.getOwnPropertyDescriptor(http, k);
  if (!d || !d.get || !d.configurable) continue;
  saved.push([k, d]);
  Object.defineProperty(http, k, { ...d, get: () => undefined });
}
try {
  require('./preload-http.mjs');
} finally {
  for (const [k, d] of saved) Object.defineProperty(http, k, d);
}
