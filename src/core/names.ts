// Ids and names the way Docker makes them.
import crypto from 'node:crypto';
import { invalidParameter } from '../util/errors.ts';

export const newId = () => crypto.randomBytes(32).toString('hex');
export const shortId = (id: string) => id.replace(/^sha256:/, '').slice(0, 12);

/** Docker's rule for container and network names. */
export const VALID_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function validateContainerName(name: string): string {
  const n = name.startsWith('/') ? name.slice(1) : name;
  if (!VALID_NAME.test(n)) throw invalidParameter(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  return n;
}

/** Longest container name that names its namespace file (`ip netns exec <prefix><name>`); NAME_MAX is 255 bytes. */
export const MAX_NETNS_NAME_BYTES = 200;

/**
 * The file a container's network namespace is bind-mounted on, below the netns dir: <prefix><name> as the
 * README promises, or <prefix>@<id> for a name too long to be a file name (Docker takes names of any
 * length). `@` is no character of a name, so the fallback never meets another container's file.
 */
export function netnsFileName(prefix: string, name: string, id: string): string {
  const byName = `${prefix}${name}`;
  return Buffer.byteLength(byName) <= MAX_NETNS_NAME_BYTES ? byName : `${prefix}@${id}`;
}

// A short version of Docker's name generator lists (adjective_scientist).
const LEFT = ['admiring', 'bold', 'brave', 'clever', 'dazzling', 'eager', 'elastic', 'festive', 'focused', 'gallant',
  'happy', 'hopeful', 'jolly', 'keen', 'loving', 'modest', 'nifty', 'optimistic', 'peaceful', 'quirky', 'relaxed',
  'serene', 'sharp', 'stoic', 'tender', 'upbeat', 'vibrant', 'wizardly', 'youthful', 'zealous'];
const RIGHT = ['albattani', 'babbage', 'bohr', 'curie', 'darwin', 'einstein', 'euclid', 'faraday', 'fermi', 'galileo',
  'hopper', 'hypatia', 'kepler', 'lovelace', 'maxwell', 'mendel', 'newton', 'noether', 'pascal', 'ritchie',
  'shannon', 'tesla', 'thompson', 'turing', 'wozniak', 'yalow'];

export function randomName(taken: (n: string) => boolean): string {
  for (let i = 0; ; i++) {
    const n = `${LEFT[crypto.randomInt(LEFT.length)]}_${RIGHT[crypto.randomInt(RIGHT.length)]}${i > 10 ? crypto.randomInt(100) : ''}`;
    if (!taken(n)) return n;
  }
}

/** Host-side veth name: `veth` + 7 hex characters, as Docker names them. */
export const vethName = () => 'veth' + crypto.randomBytes(4).toString('hex').slice(0, 7);

export const nowIso = () => new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000000Z');
export const ZERO_TIME = '0001-01-01T00:00:00Z';
