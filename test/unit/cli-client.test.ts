// The CLI's plain HTTP/1.1 client (src/cli/client.ts plainRequest): against a node:http server on a unix
// socket in a temporary directory, answers with Content-Length, chunked, HEAD, 204, errors and a slow
// handler (the client must not half-close its side while the daemon is still answering).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, ApiError, parseResponse } from '../../src/cli/client.ts';

let dir = '', sock = '';
let server: http.Server;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loom-cli-client-'));
  sock = path.join(dir, 's.sock');
  server = http.createServer((q, s) => {
    let body = '';
    q.on('data', (c) => (body += c));
    q.on('end', () => {
      if (q.url === '/v1.50/json') { s.setHeader('Content-Type', 'application/json'); s.end(JSON.stringify({ a: 1, method: q.method, body, ct: q.headers['content-type'] ?? null })); }
      else if (q.url === '/v1.50/chunked') { s.setHeader('Content-Type', 'application/json'); s.write('{"x":'); setTimeout(() => s.end('[1,2,3]}'), 20); }
      else if (q.url === '/v1.50/slow') setTimeout(() => { s.setHeader('Content-Type', 'application/json'); s.end('{"slow":true}'); }, 100);
      else if (q.url === '/v1.50/head') { s.setHeader('X-Docker-Container-Path-Stat', 'e30='); s.setHeader('Content-Length', '10'); s.end(); }
      else if (q.url === '/v1.50/none') { s.statusCode = 204; s.end(); }
      else { s.statusCode = 404; s.setHeader('Content-Type', 'application/json'); s.end('{"message":"No such container: x"}'); }
    });
  });
  await new Promise<void>((r) => server.listen(sock, r));
});

after(() => {
  server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('plain requests: JSON with Content-Length, a body sent, chunked, a slow answer, HEAD, 204', async () => {
  const c = new Client(sock);
  assert.deepEqual((await c.request('GET', '/json')).body, { a: 1, method: 'GET', body: '', ct: null });
  assert.deepEqual((await c.request('POST', '/json', { n: 'é' })).body, { a: 1, method: 'POST', body: '{"n":"é"}', ct: 'application/json' });
  assert.deepEqual((await c.request('GET', '/chunked')).body, { x: [1, 2, 3] });
  assert.deepEqual((await c.request('POST', '/slow')).body, { slow: true });
  const h = await c.request('HEAD', '/head');
  assert.equal(h.status, 200);
  assert.equal(h.res.headers['x-docker-container-path-stat'], 'e30=');
  assert.equal((await c.request('DELETE', '/none')).status, 204);
});

test('errors: the daemon\'s message as an ApiError; no daemon: Docker\'s words', async () => {
  await assert.rejects(new Client(sock).request('GET', '/missing'), (e) => e instanceof ApiError && e.status === 404 && e.message === 'No such container: x');
  await assert.rejects(new Client(path.join(dir, 'nothing.sock')).request('GET', '/json'), (e) => e instanceof ApiError && e.status === 0 && /Cannot connect to the loom daemon/.test(e.message));
});

test('parseResponse: repeated headers joined, truncated bodies refused', () => {
  const r = parseResponse(Buffer.from('HTTP/1.1 200 OK\r\nA: 1\r\na: 2\r\nContent-Length: 2\r\n\r\nok'), false);
  assert.equal(r.headers.a, '1, 2');
  assert.equal(r.body.toString(), 'ok');
  assert.throws(() => parseResponse(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok'), false), /truncated/);
  assert.throws(() => parseResponse(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab'), false), /truncated/);
  assert.throws(() => parseResponse(Buffer.from('garbage'), false), /complete HTTP response/);
});
