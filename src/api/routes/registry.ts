// Registries: POST /auth (the docker CLI's login: the daemon checks the credentials with the registry),
// pull (POST /images/create?fromImage=, dispatched here from images.ts) and POST /images/{name}/push.
// Credentials come from the X-Registry-Auth header, as the docker CLI sends them.
import type http from 'node:http';
import type { Daemon } from '../../daemon.ts';
import { route, STREAMED, type Ctx } from '../router.ts';
import { invalidParameter, LoomError, messageOf, notFound } from '../../util/errors.ts';
import { decodeAuthHeader, type AuthConfig } from '../../images/registry/service.ts';
import { ProgressStream } from '../../images/registry/progress.ts';
import { listTags, preparePull, runPull, type PullStore } from '../../images/registry/pull.ts';
import { pushImage, type PushStore } from '../../images/registry/push.ts';
import { familiarName, familiarString, fullName, parseRepoRef, type RepoRef } from '../../images/registry/refname.ts';

route('POST', '/auth', async (d, { body }) => {
  const cfg = (await body()) as AuthConfig | null;
  if (!cfg || typeof cfg !== 'object') throw invalidParameter('invalid auth configuration: a JSON object is required');
  return d.registry.login(cfg);
});

/** The image store as pull and push use it (src/images/store.ts). */
function imageStore(d: Daemon): PullStore & PushStore {
  return d.images.store;
}

/** `platform`: os[/arch] on pull, the JSON OCI platform on push (API 1.46+); only linux/amd64 is here. */
function checkPlatform(p: string | null): void {
  if (!p) return;
  let os = '', arch = '';
  if (p.trim().startsWith('{')) {
    try {
      const j = JSON.parse(p) as { os?: string; architecture?: string };
      [os, arch] = [j.os ?? '', j.architecture ?? ''];
    } catch {
      throw invalidParameter(`invalid platform: ${p}`);
    }
  } else [os = '', arch = ''] = p.toLowerCase().split('/');
  if (os !== 'linux' || !['', 'amd64', 'x86_64'].includes(arch)) {
    throw invalidParameter(`platform ${p} is not supported: loom pulls and pushes linux/amd64 images only`);
  }
}

/** A stream answer: headers now, then dockerd's JSON messages; aborted when the client goes away. */
function startStream(res: http.ServerResponse): { out: ProgressStream; signal: AbortSignal; end: () => void } {
  res.writeHead(200, { 'Content-Type': 'application/json' });
  const ac = new AbortController();
  let ended = false;
  res.on('close', () => { if (!ended) ac.abort(); });
  return {
    out: new ProgressStream((s) => { if (!res.writableEnded) res.write(s); }),
    signal: ac.signal,
    end: () => { ended = true; res.end(); },
  };
}

/** The reference a pull asks for: fromImage plus `tag`, which may be a tag or a digest (as moby reads it). */
function pullRef(fromImage: string, tag: string): RepoRef {
  const ref = parseRepoRef(fromImage);
  if (tag) {
    if (/^[a-z0-9]+:/.test(tag)) {
      if (!/^sha256:[0-9a-f]{64}$/.test(tag)) throw invalidParameter(`invalid digest: ${tag}`);
      return { ...ref, tag: undefined, digest: tag };
    }
    if (!/^[\w][\w.-]{0,127}$/.test(tag)) throw invalidParameter('invalid reference format');
    return { ...ref, tag, digest: undefined };
  }
  return ref;
}

/** POST /images/create?fromImage=X&tag=Y: a pull (tag empty and none in fromImage: every tag). */
export async function pullRoute(d: Daemon, { query, req, res }: Ctx): Promise<typeof STREAMED> {
  const from = query.get('fromImage') ?? '';
  if (!from) throw invalidParameter('fromImage or fromSrc is required');
  checkPlatform(query.get('platform'));
  const ref = pullRef(from, query.get('tag') ?? '');
  const creds = decodeAuthHeader(req.headers['x-registry-auth']);
  const store = imageStore(d);
  const current = (r: RepoRef) => d.images.find(familiarString(r))?.id;

  if (!ref.tag && !ref.digest) {
    // every tag of the repository, as moby pulls a name without tag
    const tags = await listTags(d.registry, ref, creds);
    if (!tags.length) throw notFound(`repository ${familiarName(ref)} has no tags`);
    const s = startStream(res);
    let changed = false;
    try {
      for (const tag of tags) {
        const r = { ...ref, tag };
        const p = await preparePull(d.registry, r, creds);
        try {
          const got = await runPull(p, store, s.out, { previousId: current(r), signal: s.signal, tagLine: false });
          changed ||= !got.upToDate;
          d.events.publish('image', 'pull', familiarString(r), { name: familiarString(r) });
        } finally {
          p.client.close();
        }
      }
      s.out.message(`Status: ${changed ? 'Downloaded newer image' : 'Image is up to date'} for ${familiarName(ref)}`);
    } catch (e) {
      s.out.error(messageOf(e));
    } finally {
      s.end();
    }
    return STREAMED;
  }

  const p = await preparePull(d.registry, ref, creds);
  const s = startStream(res);
  try {
    await runPull(p, store, s.out, { previousId: current(ref), signal: s.signal });
    d.events.publish('image', 'pull', familiarString(ref), { name: familiarString(ref) });
  } catch (e) {
    s.out.error(messageOf(e));
  } finally {
    p.client.close();
    s.end();
  }
  return STREAMED;
}

/** POST /images/{name}/push?tag=: one tag, or (tag empty) every tag of that repository. */
route('POST', '/images/{name*}/push', async (d, { params, query, req, res }) => {
  const name = params.name!;
  let ref: RepoRef;
  try {
    ref = parseRepoRef(name);
  } catch {
    throw invalidParameter(`invalid reference format: ${name}`);
  }
  if (ref.digest) throw invalidParameter('cannot push a digest reference');
  checkPlatform(query.get('platform'));
  const tagParam = query.get('tag') ?? '';
  const creds = decodeAuthHeader(req.headers['x-registry-auth']);
  const store = imageStore(d);
  const repoName = familiarName(ref);
  let targets: { tag: string; id: string }[];
  if (tagParam || ref.tag) {
    const tag = tagParam || ref.tag!;
    const img = d.images.find(`${repoName}:${tag}`);
    targets = img ? [{ tag, id: img.id }] : [];
  } else {
    targets = d.images.list().flatMap((i) => d.images.tagsOf(i.id).filter((t) => t.startsWith(`${repoName}:`) && !t.slice(repoName.length + 1).includes('/')).map((t) => ({ tag: t.slice(repoName.length + 1), id: i.id })));
  }
  const s = startStream(res);
  s.out.message(`The push refers to repository [${fullName(ref)}]`);
  try {
    // dockerd says this in the stream, after the first line
    if (!targets.length) throw notFound(`An image does not exist locally with the tag: ${repoName}`);
    for (const t of targets) {
      if (s.signal.aborted) throw new LoomError(499, 'push cancelled');
      const r = await pushImage(d.registry, store, t.id, { ...ref, tag: t.tag }, creds, s.out, s.signal);
      // the image now has this repository digest, as dockerd records it
      d.store.tag(`${fullName(ref)}@${r.digest}`, t.id);
      d.events.publish('image', 'push', `${repoName}:${t.tag}`, { name: `${repoName}:${t.tag}` });
    }
  } catch (e) {
    s.out.error(messageOf(e));
  } finally {
    s.end();
  }
  return STREAMED;
});
