// Images: import, list, inspect, history, tag, delete, prune, save (get), load.
import { route, STREAMED, bool, filters, noContent } from '../router.ts';
import { invalidParameter, notFound, LoomError, messageOf } from '../../util/errors.ts';
import { inspectImage, listImage } from '../imagejson.ts';
import { pruneFilter } from '../../core/networks.ts';
import type { Daemon } from '../../daemon.ts';
import { chainIds, imageUsers, type ImageUser, type DeleteItem } from '../../core/images.ts';
import type { ImageRecord } from '../../core/types.ts';
import { familiar, matchReferenceFilter, parseNormalized, referenceString, withDefaultTag } from '../../images/reference.ts';
import { loadImages, saveImages, type SaveItem } from '../../images/archive.ts';

/**
 * The `platform` of import, save and load (`os/arch` or, from API 1.48, an OCI platform as JSON): loom
 * keeps linux/amd64 images only, so anything else is refused, naming it.
 */
function checkPlatform(query: URLSearchParams): void {
  for (const v of query.getAll('platform')) {
    if (!v) continue;
    let os = '', arch = '';
    try {
      const j = JSON.parse(v) as { os?: string; architecture?: string };
      os = j.os ?? '';
      arch = j.architecture ?? '';
    } catch {
      [os = '', arch = ''] = v.toLowerCase().split('/');
    }
    if (os !== 'linux' || (arch && arch !== 'amd64' && arch !== 'x86_64')) throw invalidParameter(`platform ${JSON.stringify(v)} is not supported: loom keeps linux/amd64 images`);
  }
}

/** Containers using an image, for delete's conflict checks. */
function usersOf(d: Daemon): (id: string) => ImageUser[] {
  return imageUsers(d.containers.list());
}

route('POST', '/images/create', async (d, { query, req, res }) => {
  const src = query.get('fromSrc');
  if (!src) {
    const from = query.get('fromImage') ?? '';
    const tag = query.get('tag') || '';
    // A "pull" of an image that is here already succeeds as Docker's does when it is up to date: the docker
    // CLI pulls after any 404 from create (an unknown network, say) and then retries the create.
    let local: ImageRecord | undefined;
    let shown = from;
    try {
      const r = parseNormalized(from);
      const full = withDefaultTag(tag && !r.tag && !r.digest ? (/^sha256:/.test(tag) ? { ...r, digest: tag } : { ...r, tag }) : r);
      shown = familiar(referenceString(full));
      local = d.images.find(referenceString(full));
    } catch { /* not a reference: not here */ }
    if (local) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(`${JSON.stringify({ status: `Status: Image is up to date for ${shown}` })}\n`);
      return STREAMED;
    }
    throw notFound(`pull access denied for ${from}: loom has no registry access; import a root filesystem with 'loom import' instead`);
  }
  if (src !== '-') throw invalidParameter(`importing from a URL is not supported: ${src}`);
  checkPlatform(query);
  const img = await d.images.import(req, { repo: query.get('repo') || undefined, tag: query.get('tag') || undefined, changes: query.getAll('changes'), message: query.get('message') ?? undefined });
  d.events.publish('image', 'import', img.id, { name: img.name });
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ status: img.id }) + '\n');
  return STREAMED;
});

const LIST_FILTERS = ['dangling', 'reference', 'before', 'since', 'label', 'until'];

route('GET', '/images/json', (d, { query }) => {
  const f = filters(query);
  for (const k of Object.keys(f)) if (!LIST_FILTERS.includes(k)) throw invalidParameter(`invalid filter '${k}'`);
  const all = bool(query, 'all');
  let dangling: boolean | undefined;
  for (const v of f.dangling ?? []) {
    if (!['true', 'false', '1', '0'].includes(v)) throw invalidParameter(`invalid filter 'dangling=${v}'`);
    dangling = v === 'true' || v === '1';
  }
  const createdOf = (ref: string) => Date.parse(d.images.get(ref).created);
  const before = f.before?.length ? Math.min(...f.before.map(createdOf)) : undefined;
  const since = f.since?.length ? Math.max(...f.since.map(createdOf)) : undefined;
  const keepLabels = f.label?.length ? pruneFilter({ label: f.label }) : undefined;
  const out = [];
  for (const img of d.images.list()) {
    const created = Date.parse(img.created);
    if (before !== undefined && created >= before) continue;
    if (since !== undefined && created <= since) continue;
    if (keepLabels && !keepLabels({ created: img.created, labels: img.config.Labels ?? {} })) continue;
    let refs = d.images.store.refsOf(img.id);
    const hadRefs = refs.length > 0;
    if (f.reference?.length) refs = refs.filter((r) => f.reference!.some((p) => matchReferenceFilter(p, r)));
    let tags = refs.filter((r) => !r.includes('@')).map(familiar);
    let digests = refs.filter((r) => r.includes('@')).map(familiar);
    if (!tags.length && !digests.length) {
      if (f.reference?.length) continue;
      if (hadRefs) continue;
      if (!all && d.images.children(img.id).length) continue; // intermediate images
      if (dangling === false) continue;
      tags = ['<none>:<none>'];
      digests = ['<none>@<none>'];
    } else if (dangling === true && tags.length) continue;
    if (dangling === true && !tags.length && hadRefs) continue;
    out.push(listImage(img, tags, digests));
  }
  return out.sort((a, b) => b.Created - a.Created);
});

route('GET', '/images/get', async (d, { query, res }) => {
  checkPlatform(query);
  const names = query.getAll('names').flatMap((n) => n.split(',')).filter(Boolean);
  return save(d, names, res);
});

route('GET', '/images/{name*}/get', async (d, { params, query, res }) => {
  checkPlatform(query);
  return save(d, [params.name!], res);
});

async function save(d: Daemon, names: string[], res: import('node:http').ServerResponse): Promise<typeof STREAMED> {
  if (!names.length) throw invalidParameter('no image names given');
  const items = new Map<string, SaveItem>();
  const add = (img: ImageRecord, ref?: string) => {
    const item = items.get(img.id) ?? { image: img, refs: [] };
    items.set(img.id, item);
    if (ref && !item.refs.includes(ref)) item.refs.push(ref);
  };
  for (const n of names) {
    let r;
    try {
      r = parseNormalized(n);
    } catch { /* an ID */ }
    if (r && r.tag === undefined && !r.digest && !d.images.find(n)?.id.slice(7).startsWith(n)) {
      // a repository without tag: every tagged image of it (as Docker's save)
      const name = `${r.domain}/${r.path}:`;
      const refs = d.store.tags().filter((t) => t.ref.startsWith(name) && !t.ref.includes('@'));
      if (!refs.length) throw notFound(`No such image: ${familiar(referenceString(withDefaultTag(r)))}`);
      for (const t of refs) add(d.images.get(t.image_id), t.ref);
      continue;
    }
    const img = d.images.get(n);
    const stored = r ? referenceString(withDefaultTag(r)) : undefined;
    add(img, stored && d.images.store.refsOf(img.id).includes(stored) && !stored.includes('@') ? stored : undefined);
  }
  res.writeHead(200, { 'Content-Type': 'application/x-tar' });
  try {
    await saveImages(d.images.store, [...items.values()], res);
  } catch (e) {
    d.log.error({ err: messageOf(e) }, 'image save failed');
    res.destroy();
    return STREAMED;
  }
  res.end();
  for (const id of items.keys()) d.events.publish('image', 'save', id, { name: id });
  return STREAMED;
}

route('POST', '/images/load', async (d, { query, req, res }) => {
  checkPlatform(query);
  // `quiet` only silences progress bars, and loom's load sends none
  res.writeHead(200, { 'Content-Type': 'application/json' });
  const send = (o: unknown) => res.write(`${JSON.stringify(o)}\n`);
  try {
    const ids = await loadImages(d.images.store, req, { message: (line) => send({ stream: `${line}\n` }) }, (t) => d.images.find(t)?.id);
    for (const id of ids) d.events.publish('image', 'load', id, { name: id });
  } catch (e) {
    // headers went out already: the error travels in the stream, as dockerd sends it
    send({ errorDetail: { message: messageOf(e) }, error: messageOf(e) });
  }
  res.end();
  return STREAMED;
});

route('GET', '/images/{name*}/json', (d, { params }) => inspectImage(d.images, d.images.get(params.name!)));

route('GET', '/images/{name*}/history', (d, { params }) => d.images.history(d.images.get(params.name!)));

route('POST', '/images/{name*}/tag', (d, { params, query, res }) => {
  const i = d.images.get(params.name!);
  const repo = query.get('repo');
  if (!repo) throw invalidParameter('repository name must have at least one component');
  const shown = d.images.tag(i.id, repo, query.get('tag') || undefined);
  d.events.publish('image', 'tag', i.id, { name: shown });
  noContent(res, 201);
  return STREAMED;
});

/** `image prune`: dangling images by default, with dangling=false every image no container uses. */
route('POST', '/images/prune', (d, { query }) => {
  const { dangling, ...rest } = filters(query);
  const danglingOnly = !(dangling ?? []).some((v) => v === 'false' || v === '0');
  const keep = pruneFilter(rest);
  const deleted: DeleteItem[] = [];
  let reclaimed = 0;
  const users = usersOf(d);
  d.images.collectDeleted(users);
  // as moby: what the removed layers (Deleted entries that are chain IDs) took
  const sizes = new Map<string, number>();
  for (const i of d.images.list()) for (const [n, c] of chainIds(i.layers ?? []).entries()) sizes.set(c, d.images.store.layer(i.layers[n]!)?.size ?? 0);
  for (const img of d.images.list()) {
    if (!d.images.store.image(img.id) || d.images.store.image(img.id)!.deleted) continue; // gone as a parent
    const refs = d.images.store.refsOf(img.id);
    if (danglingOnly && refs.some((r) => !r.includes('@'))) continue;
    if (danglingOnly && d.images.children(img.id).length) continue;
    if (users(img.id).length || !keep({ created: img.created, labels: img.config.Labels ?? {} })) continue;
    try {
      const out: DeleteItem[] = [];
      if (refs.length && !danglingOnly) for (const r of refs) out.push(...d.images.remove(r, users, false, true));
      else out.push(...d.images.remove(img.id, users, false, true));
      deleted.push(...out);
      for (const o of out) if (o.Deleted) reclaimed += sizes.get(o.Deleted) ?? 0;
    } catch (e) {
      if (!(e instanceof LoomError) || e.status !== 409) throw e;
    }
  }
  for (const o of deleted) if (o.Deleted) d.events.publish('image', 'delete', o.Deleted, { name: o.Deleted });
  return { ImagesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed };
});

/** `system prune` asks for the build cache too: loom builds nothing, so there is none. */
route('POST', '/build/prune', () => ({ CachesDeleted: null, SpaceReclaimed: 0 }));

route('DELETE', '/images/{name*}', (d, { params, query }) => {
  const users = usersOf(d);
  d.images.collectDeleted(users);
  const out = d.images.remove(params.name!, users, bool(query, 'force'), !bool(query, 'noprune'));
  for (const o of out) {
    if (o.Untagged) d.events.publish('image', 'untag', o.Untagged, { name: o.Untagged });
    if (o.Deleted) d.events.publish('image', 'delete', o.Deleted, { name: o.Deleted });
  }
  return out;
});
