// The parts of an image reference the registry client needs, normalized as Docker's reference library does
// (`busybox` = docker.io/library/busybox:latest; `localhost:5000/box` keeps its domain), and the familiar
// forms Docker prints. (The image store has the full reference grammar; this is the registry's view of it.)
import { invalidParameter } from '../../util/errors.ts';

export interface RepoRef {
  /** `docker.io`, `localhost:5000` */
  domain: string;
  /** the repository path on that registry: `library/busybox`, `team/app` */
  path: string;
  tag?: string;
  digest?: string;
}

const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*';
const DOMAIN = '(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\\[[0-9a-fA-F:.]+\\])(?::[0-9]+)?';
const NAME_RE = new RegExp(`^(?:${DOMAIN}/)?${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_RE = /^[\w][\w.-]{0,127}$/;

export function parseRepoRef(ref: string): RepoRef {
  const bad = () => invalidParameter('invalid reference format');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw bad();
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) throw bad();
  }
  if (!NAME_RE.test(rest) || rest.length > 255) {
    if (/[A-Z]/.test(rest)) throw invalidParameter('invalid reference format: repository name (library/' + rest + ') must be lowercase');
    throw bad();
  }
  const slash = rest.indexOf('/');
  const first = slash < 0 ? '' : rest.slice(0, slash);
  let domain = 'docker.io';
  let path = rest;
  if (slash >= 0 && (/[.:]/.test(first) || first === 'localhost' || first.toLowerCase() !== first)) {
    domain = first;
    path = rest.slice(slash + 1);
  }
  if (domain === 'index.docker.io') domain = 'docker.io';
  if (domain === 'docker.io' && !path.includes('/')) path = `library/${path}`;
  return { domain, path, tag, digest };
}

/** `docker.io/library/busybox` → `busybox`; `docker.io/u/app` → `u/app`; others keep their domain. */
export function familiarName(r: RepoRef): string {
  if (r.domain !== 'docker.io') return `${r.domain}/${r.path}`;
  return r.path.startsWith('library/') && r.path.split('/').length === 2 ? r.path.slice(8) : r.path;
}

/** The familiar string with tag and/or digest: `busybox:latest`, `localhost:5000/box@sha256:...`. */
export function familiarString(r: RepoRef): string {
  return `${familiarName(r)}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

/** The fully qualified name: `docker.io/library/busybox`. */
export function fullName(r: RepoRef): string {
  return `${r.domain}/${r.path}`;
}
