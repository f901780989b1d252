// The registry's view of an image reference: the store's reference grammar and normalization
// (src/images/reference.ts: `busybox` = docker.io/library/busybox, familiar forms as Docker shows them).
import { familiarName, familiarString, fullName, parseNormalized, type Reference } from '../reference.ts';

export type RepoRef = Reference;

export function parseRepoRef(ref: string): RepoRef {
  return parseNormalized(ref);
}

export { familiarName, familiarString, fullName };
