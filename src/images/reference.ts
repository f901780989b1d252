// Docker image references: the grammar and normalization of distribution/reference (read for facts:
// reference/regexp.go, normalize.go), written here because no npm package follows it exactly.
//
//   reference := name [ ":" tag ] [ "@" digest ]
//   name      := [domain '/'] path-component ['/' path-component]*
//   domain    := host [':' port]   (a first component is a domain when it has '.' or ':', is 'localhost',
//                                   or has upper case letters; otherwise the name is Docker Hub's)
//
// loom stores one form, the fully qualified one (`docker.io/library/busybox:latest`), and shows the
// familiar one (`busybox:latest`), exactly as dockerd's reference store does.
import { LoomError } from '../util/errors.ts';

const ALNUM = '[a-z0-9]+';
const SEPARATOR = '(?:[._]|__|[-]+)';
const PATH_COMPONENT = `${ALNUM}(?:${SEPARATOR}${ALNUM})*`;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const IPV6 = '\\[(?:[a-fA-F0-9:]+)\\]';
const DOMAIN_NAME = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*`;
const HOST = `(?:${DOMAIN_NAME}|${IPV6})`;
const DOMAIN = `${HOST}(?::[0-9]+)?`;
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';
const NAME = `(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`;
const REFERENCE_RE = new RegExp(`^(${NAME})(?::(${TAG}))?(?:@(${DIGEST}))?$`);
const TAG_RE = new RegExp(`^${TAG}$`);
const HEX64_RE = /^[a-f0-9]{64}$/;
const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DOMAIN = 'index.docker.io';
const OFFICIAL_REPO_PREFIX = 'library/';
const NAME_TOTAL_LENGTH_MAX = 255;

/** A parsed, normalized reference: `domain/path` with an optional tag and digest. */
export interface Reference {
  domain: string;
  path: string;
  tag?: string;
  digest?: string;
}

export const invalidReference = (detail?: string) => new LoomError(400, detail ? `invalid reference format: ${detail}` : 'invalid reference format');

/** The full name (`docker.io/library/busybox`). */
export const fullName = (r: Reference) => `${r.domain}/${r.path}`;

/** The stored form: `docker.io/library/busybox:latest`, `localhost:5000/box@sha256:...`. */
export function referenceString(r: Reference): string {
  return fullName(r) + (r.tag !== undefined ? `:${r.tag}` : '') + (r.digest ? `@${r.digest}` : '');
}

/** The name as Docker shows it: `busybox`, `user/app`, `localhost:5000/box`. */
export function familiarName(r: Reference): string {
  if (r.domain !== DEFAULT_DOMAIN) return fullName(r);
  const rest = r.path.startsWith(OFFICIAL_REPO_PREFIX) && !r.path.slice(OFFICIAL_REPO_PREFIX.length).includes('/')
    ? r.path.slice(OFFICIAL_REPO_PREFIX.length) : r.path;
  return rest;
}

/** The reference as Docker shows it: `busybox:latest`, `box@sha256:...`. */
export function familiarString(r: Reference): string {
  return familiarName(r) + (r.tag !== undefined ? `:${r.tag}` : '') + (r.digest ? `@${r.digest}` : '');
}

/** Splits off the domain as distribution's splitDockerDomain does. */
function splitDomain(name: string): [string, string] {
  const i = name.indexOf('/');
  let domain: string, rest: string;
  const first = name.slice(0, i);
  if (i === -1 || (!/[.:]/.test(first) && first !== 'localhost' && first.toLowerCase() === first)) {
    domain = DEFAULT_DOMAIN;
    rest = name;
  } else {
    domain = first;
    rest = name.slice(i + 1);
  }
  if (domain === LEGACY_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !rest.includes('/')) rest = OFFICIAL_REPO_PREFIX + rest;
  return [domain, rest];
}

/**
 * ParseNormalizedNamed: `busybox` → docker.io/library/busybox (no tag added), with Docker's errors.
 * Throws a 400 LoomError with "invalid reference format..." for anything that is not a reference.
 */
export function parseNormalized(s: string): Reference {
  if (HEX64_RE.test(s)) throw new LoomError(400, `invalid repository name (${s}), cannot specify 64-byte hexadecimal strings`);
  const [domain, rest] = splitDomain(s);
  // the remote name is checked before the whole: upper case there has a message of its own
  const remoteName = rest.replace(/[:@].*$/, '');
  if (remoteName.toLowerCase() !== remoteName) throw invalidReference('repository name must be lowercase');
  const m = REFERENCE_RE.exec(`${domain}/${rest}`);
  if (!m || !s) throw invalidReference();
  const name = m[1]!;
  if (name.length > NAME_TOTAL_LENGTH_MAX) throw new LoomError(400, `repository name must not be more than ${NAME_TOTAL_LENGTH_MAX} characters`);
  const slash = name.indexOf('/');
  const ref: Reference = { domain: name.slice(0, slash), path: name.slice(slash + 1) };
  if (m[2] !== undefined) ref.tag = m[2];
  if (m[3] !== undefined) {
    if (!DIGEST_RE.test(m[3])) throw invalidReference();
    ref.digest = m[3];
  }
  return ref;
}

/** TagNameOnly: a reference without tag or digest gets `latest`. */
export function withDefaultTag(r: Reference): Reference {
  return r.tag === undefined && !r.digest ? { ...r, tag: 'latest' } : r;
}

/** `busybox` → `docker.io/library/busybox:latest`: the form the store keeps. */
export function normalize(s: string): string {
  return referenceString(withDefaultTag(parseNormalized(s)));
}

/** A repository plus an optional tag as the API gives them (`repo=x&tag=y` of tag, import, commit). */
export function fromRepoTag(repo: string, tag?: string): Reference {
  const r = parseNormalized(repo);
  if (tag) {
    // reference.WithTag: the given tag replaces one in repo
    if (!TAG_RE.test(tag)) throw invalidReference();
    return { ...r, tag };
  }
  return withDefaultTag(r);
}

/** The stored form of a stored or user-given reference shown as Docker shows it. */
export function familiar(stored: string): string {
  try {
    return familiarString(parseNormalized(stored));
  } catch {
    return stored;
  }
}

export const isDigest = (s: string) => DIGEST_RE.test(s);

/**
 * Docker's reference filter (`images --filter reference=...`): a path.Match-style glob against the
 * familiar name, or name:tag when the pattern has a tag.
 */
export function matchReferenceFilter(pattern: string, stored: string): boolean {
  let r: Reference;
  try {
    r = parseNormalized(stored);
  } catch {
    return false;
  }
  const name = familiarName(r);
  const re = globToRegExp(pattern);
  if (r.tag !== undefined) {
    if (re.test(`${name}:${r.tag}`)) return true;
  }
  if (r.digest && re.test(`${name}@${r.digest}`)) return true;
  return re.test(name);
}

/** Go's path.Match as a RegExp: `*` and `?` do not cross `/`, `[...]` classes, `\` escapes. */
export function globToRegExp(p: string): RegExp {
  let out = '';
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '\\' && i + 1 < p.length) out += p[++i]!.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    else if (c === '[') {
      const end = p.indexOf(']', i + 1);
      if (end === -1) out += '\\[';
      else {
        let cls = p.slice(i + 1, end);
        if (cls.startsWith('^')) cls = '^' + cls.slice(1);
        out += `[${cls.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else out += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}
