// .dockerignore: Docker's pattern rules (moby/patternmatcher: `*`, `?`, `**`, `[...]`, `!` exceptions,
// the last matching pattern wins, leading `/` and `./` cleaned, a matched directory takes its contents
// along unless an exception reaches into it) come from @balena/dockerignore, a port of moby's matcher
// tested against docker build. Here: reading the file, and the Dockerfile and .dockerignore that are
// sent whatever the patterns say (the docker CLI's TrimBuildFilesFromExcludes).
import fs from 'node:fs';
import path from 'node:path';
import ignoreModule, { type Ignore } from '@balena/dockerignore';

// a CommonJS module whose typings declare an ES default export
const ignore = ignoreModule as unknown as () => Ignore;

export interface ContextFilter {
  /** true when the context path (relative, `/`-separated) is excluded */
  excluded(rel: string): boolean;
  /** true when a directory may be skipped without looking inside (no exception could bring a child back) */
  skipDir(rel: string): boolean;
}

export function readDockerignore(text: string): string[] {
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
}

export function contextFilter(patterns: string[], keep: string[] = []): ContextFilter {
  const ig = ignore().add(patterns);
  const hasExceptions = patterns.some((p) => p.startsWith('!'));
  const kept = new Set(keep.map((k) => path.posix.normalize(k.replace(/^\.?\/+/, ''))));
  return {
    excluded(rel: string) {
      const r = path.posix.normalize(rel.replace(/^\.?\/+/, ''));
      if (r === '.' || r === '') return false;
      if (kept.has(r)) return false;
      return ig.ignores(r);
    },
    skipDir(rel: string) {
      const r = path.posix.normalize(rel.replace(/^\.?\/+/, ''));
      if (hasExceptions) return false;
      for (const k of kept) if (k.startsWith(`${r}/`)) return false;
      return ig.ignores(r);
    },
  };
}

/**
 * Removes the excluded files from an unpacked context directory (the daemon side of .dockerignore: the
 * docker CLI filters before sending, other clients may not). The .dockerignore file and the Dockerfile
 * are removed too when the patterns list them, after they have been read, as moby does.
 */
export function applyDockerignore(root: string, patterns: string[]): void {
  if (!patterns.length) return;
  const f = contextFilter(patterns);
  const walk = (dirRel: string): boolean => {
    // returns true when the directory ends up empty and itself excluded (then it goes too)
    const abs = path.join(root, dirRel);
    for (const e of fs.readdirSync(abs, { withFileTypes: true })) {
      const rel = dirRel ? `${dirRel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (f.skipDir(rel)) {
          fs.rmSync(path.join(root, rel), { recursive: true, force: true });
          continue;
        }
        walk(rel);
        if (f.excluded(rel) && fs.readdirSync(path.join(root, rel)).length === 0) fs.rmdirSync(path.join(root, rel));
      } else if (f.excluded(rel)) {
        fs.rmSync(path.join(root, rel), { force: true });
      }
    }
    return false;
  };
  walk('');
}

/** The client side: the context's files (relative paths) a build sends, in walk order (directories first). */
export function contextFiles(root: string, patterns: string[], dockerfile: string): string[] {
  const f = contextFilter(patterns, [dockerfile, '.dockerignore']);
  const out: string[] = [];
  const walk = (dirRel: string) => {
    const abs = dirRel ? path.join(root, dirRel) : root;
    for (const e of fs.readdirSync(abs, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const rel = dirRel ? `${dirRel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (f.skipDir(rel)) continue;
        if (!f.excluded(rel)) out.push(rel);
        walk(rel);
      } else if (!f.excluded(rel)) {
        out.push(rel);
      }
    }
  };
  walk('');
  return out;
}
