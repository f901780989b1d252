// Registry errors in Docker's words. The distribution spec's error body is {"errors":[{code,message,detail}]};
// Go's errcode prints one as "<code in lower case, _ as space>: <message>" (MANIFEST_UNKNOWN, "manifest
// unknown" → "manifest unknown: manifest unknown"), and moby's pull wraps the first one by its code.
import { LoomError } from '../../util/errors.ts';

export interface RegistryErrorItem { code: string; message: string; detail?: unknown }

/** An error answer of a registry: HTTP status plus the spec's error items (possibly none). */
export class RegistryError extends LoomError {
  readonly httpStatus: number;
  readonly items: RegistryErrorItem[];
  constructor(httpStatus: number, items: RegistryErrorItem[], fallback: string) {
    super(apiStatus(httpStatus, items), items.length ? describeItem(items[0]!) : fallback);
    this.httpStatus = httpStatus;
    this.items = items;
    this.name = 'RegistryError';
  }
  get code(): string | undefined {
    return this.items[0]?.code;
  }
}

export function describeItem(e: RegistryErrorItem): string {
  return `${e.code.toLowerCase().replace(/_/g, ' ')}: ${e.message}`;
}

function apiStatus(http: number, items: RegistryErrorItem[]): number {
  const code = items[0]?.code;
  if (code === 'UNAUTHORIZED' || http === 401) return 401;
  if (code === 'DENIED' || code === 'MANIFEST_UNKNOWN' || code === 'NAME_UNKNOWN' || code === 'BLOB_UNKNOWN' || http === 404) return 404;
  return 500;
}

/** Reads a registry's error body (JSON per the spec, or anything else) into a RegistryError. */
export function registryError(status: number, statusText: string, body: string, what: string): RegistryError {
  let items: RegistryErrorItem[] = [];
  try {
    const j = JSON.parse(body) as { errors?: RegistryErrorItem[]; details?: string };
    if (Array.isArray(j.errors)) items = j.errors.filter((e) => e && typeof e.code === 'string').map((e) => ({ code: e.code, message: String(e.message ?? ''), detail: e.detail }));
  } catch { /* not JSON */ }
  // A bare 401 (a HEAD has no body) still means what UNAUTHORIZED means.
  if (!items.length && status === 401) items = [{ code: 'UNAUTHORIZED', message: 'authentication required' }];
  const text = body.trim().slice(0, 200);
  return new RegistryError(status, items, `${what}: unexpected status ${status} ${statusText}${text ? `: ${text}` : ''}`);
}

/**
 * moby's translatePullError: DENIED, MANIFEST_UNKNOWN and NAME_UNKNOWN become "not found" errors that name
 * the reference (familiar form: `busybox:latest`, `localhost:5000/box:1`).
 */
export function pullError(err: unknown, familiarName: string, familiarRef: string): Error {
  if (!(err instanceof RegistryError) || !err.items.length) return err as Error;
  const cause = describeItem(err.items[0]!);
  switch (err.code) {
    case 'DENIED':
      return new LoomError(404, `pull access denied for ${familiarName}, repository does not exist or may require 'docker login': ${cause}`);
    case 'MANIFEST_UNKNOWN':
      return new LoomError(404, `manifest for ${familiarRef} not found: ${cause}`);
    case 'NAME_UNKNOWN':
      return new LoomError(404, `repository ${familiarName} not found: ${cause}`);
    default:
      return err;
  }
}

export class DigestMismatchError extends LoomError {
  constructor(what: string, want: string, got: string) {
    super(500, `${what}: digest mismatch: expected ${want}, got ${got}`);
  }
}
