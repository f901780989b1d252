// loom's side of its CNI plugin (bin/loom-cni): POST /loom/cni/{add,del,check,gc,status}, each with the
// plugin's request as JSON (src/cni/attachments.ts). Not part of Docker's API; under /loom/ so it never
// collides with it.
import { route } from '../router.ts';
import { invalidParameter } from '../../util/errors.ts';
import { cniOf, type CniRequest } from '../../cni/attachments.ts';

async function request(body: () => Promise<any>): Promise<CniRequest> {
  const b = (await body()) ?? {};
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
