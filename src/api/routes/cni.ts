// loom's side of its CNI plugin: POST /loom/cni/exec takes a whole plugin invocation (stdin as the body, the
// CNI_* variables as Cni-* headers) and answers with the plugin's stdout and exit code (header Cni-Exit),
// running src/cni/plugin.ts's runPlugin here, in process; POST /loom/cni/{add,del,check,gc,status} are its
// single operations, each with the request as JSON (src/cni/attachments.ts). Not part of Docker's API;
// under /loom/ so it never collides with it.
import { route, STREAMED } from '../router.ts';
import { invalidParameter, LoomError, messageOf } from '../../util/errors.ts';
import { cniOf, type CniRequest } from '../../cni/attachments.ts';
import { CNI_ENV, CNI_ERR, CniError, cniCodeOf, runPlugin } from '../../cni/plugin.ts';
import type { Daemon } from '../../daemon.ts';

async function request(body: () => Promise<any>): Promise<CniRequest> {
  return requestOf((await body()) ?? {});
}

function requestOf(b: any): CniRequest {
  if (typeof b !== 'object') throw invalidParameter('a JSON object is required');
  for (const k of ['containerId', 'netns', 'ifname', 'network']) if (b[k] !== undefined && typeof b[k] !== 'string') throw invalidParameter(`${k} must be a string`);
  return { containerId: b.containerId ?? '', netns: b.netns ?? '', ifname: b.ifname ?? '', network: b.network ?? '', args: b.args ?? {} };
}

route('POST', '/loom/cni/add', async (d, { body }) => cniOf(d).add(await request(body)));

route('POST', '/loom/cni/del', async (d, { body }) => {
  await cniOf(d).del(await request(body));
  return {};
});

route('POST', '/loom/cni/check', async (d, { body }) => {
  await cniOf(d).check(await request(body));
  return {};
});

route('POST', '/loom/cni/gc', async (d, { body }) => {
  const b = (await body()) ?? {};
  const valid = Array.isArray(b.validAttachments) ? b.validAttachments : [];
  return { removed: await cniOf(d).gc(String(b.network ?? ''), valid) };
});

route('POST', '/loom/cni/status', async (d, { body }) => {
  const b = (await body()) ?? {};
  cniOf(d).status(String(b.network ?? ''));
  return {};
});

/** The plugin's operations, in process (what the per-operation routes do), errors as the spec's. */
async function inProcess(d: Daemon, op: string, b: any): Promise<any> {
  try {
    const c = cniOf(d);
    switch (op) {
      case 'add': return await c.add(requestOf(b));
      case 'del': return await c.del(requestOf(b));
      case 'check': return await c.check(requestOf(b));
      case 'gc': return { removed: await c.gc(String(b.network ?? ''), Array.isArray(b.validAttachments) ? b.validAttachments : []) };
      case 'status': return c.status(String(b.network ?? ''));
      default: throw new CniError(CNI_ERR.invalidEnv, `unknown operation ${op}`);
    }
  } catch (e) {
    if (e instanceof CniError) throw e;
    if (e instanceof LoomError) throw new CniError(cniCodeOf(e.status, op, e.message), e.message);
    throw new CniError(CNI_ERR.loom, messageOf(e));
  }
}

route('POST', '/loom/cni/exec', async (d, { req, res }) => {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const env: NodeJS.ProcessEnv = {};
  for (const k of CNI_ENV) {
    const v = req.headers[k.toLowerCase().replace(/_/g, '-')];
    if (typeof v === 'string') env[k] = v;
  }
  const r = await runPlugin({ env, stdin: Buffer.concat(chunks).toString() }, (op, body) => inProcess(d, op, body));
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(r.out), 'Cni-Exit': String(r.code) });
  res.end(r.out);
  return STREAMED;
});
