// Images: import/pull, list, inspect, tag, prune, delete.
import { route, STREAMED, bool, filters, noContent } from '../router.ts';
import { invalidParameter, notFound } from '../../util/errors.ts';
import { inspectImage, listImage } from '../render.ts';
import { pruneFilter } from '../../core/networks.ts';
route('POST', '/images/create', async (d, { query, req, res }) => {
  const src = query.get('fromSrc');
  if (!src) {
    const from = query.get('fromImage') ?? '';
    const tag = query.get('tag') || 'latest';
    // A "pull" of an image that is here already succeeds as Docker's does when it is up to date: the docker
    // CLI pulls after any 404 from create (an unknown network, say) and then retries the create.
    const local = d.images.find(`${from.replace(/^docker\.io\/(library\/)?/, '')}:${tag}`);
    if (local) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(`${JSON.stringify({ status: `Pulling from library/${from}`, id: tag })}\n${JSON.stringify({ status: `Status: Image is up to date for ${from}:${tag}` })}\n`);
      return STREAMED;
    }
    throw notFound(`pull access denied for ${from}: loom has no registry access; import a root filesystem with 'loom import' instead`);
  }
  if (src !== '-') throw invalidParameter(`importing from a URL is not supported: ${src}`);
  const img = await d.images.import(req, { repo: query.get('repo') ?? undefined, tag: query.get('tag') ?? undefined, changes: query.getAll('changes'), message: query.get('message') ?? undefined });
  d.events.publish('image', 'import', img.id, { name: img.name });
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ status: img.id }) + '\n');
  return STREAMED;
});

route('GET', '/images/json', (d, { query }) => {
  const f = filters(query);
  // a build's intermediate images (untagged parents of other images) show only with all=1, as in Docker
  const images = d.images.list();
  const parents = new Set(images.map((i) => (i as { parent?: string }).parent).filter(Boolean));
  const all = bool(query, 'all');
  return images.filter((i) => all || !parents.has(i.id) || d.images.tagsOf(i.id).length).map((i) => listImage(i, d.images.tagsOf(i.id)))
    .filter((i) => !f.reference || f.reference.some((r) => i.RepoTags.some((t) => t === r || t.startsWith(`${r}:`))))
    .reverse();
});

route('GET', '/images/{name*}/json', (d, { params }) => {
  const i = d.images.get(params.name!);
  return inspectImage(i, d.images.tagsOf(i.id));
});

route('POST', '/images/{name*}/tag', (d, { params, query, res }) => {
  const i = d.images.get(params.name!);
  const repo = query.get('repo');
  if (!repo) throw invalidParameter('repository name must have at least one component');
  d.images.tag(i.id, `${repo}:${query.get('tag') || 'latest'}`);
  noContent(res, 201);
  return STREAMED;
});

/** `image prune`: dangling images (no tag) by default, with dangling=false every image no container uses. */
route('POST', '/images/prune', (d, { query }) => {
  const { dangling, ...rest } = filters(query);
  const danglingOnly = !(dangling ?? []).some((v) => v === 'false' || v === '0');
  const keep = pruneFilter(rest);
  const deleted: { Untagged?: string; Deleted?: string }[] = [];
  let reclaimed = 0;
  for (const img of d.images.list()) {
    if (danglingOnly && d.images.tagsOf(img.id).length) continue;
    if (d.containers.usesImage(img.id) || !keep({ created: img.created, labels: img.config.Labels ?? {} })) continue;
    deleted.push(...d.images.remove(img.id, () => undefined, true));
    reclaimed += img.size;
  }
  return { ImagesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed };
});

/** `system prune` asks for the build cache too: loom builds nothing, so there is none. */
route('POST', '/build/prune', () => ({ CachesDeleted: null, SpaceReclaimed: 0 }));

route('DELETE', '/images/{name*}', (d, { params, query }) => {
  return d.images.remove(params.name!, (id) => d.containers.usesImage(id), bool(query, 'force'));
});
