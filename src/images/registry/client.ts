// A client of the Docker Registry HTTP API V2 / OCI distribution spec for one registry and one set of
// credentials: ping (scheme and auth challenges), manifests (by tag or digest, verified), blobs (streamed
// and verified while streaming), and the push side (HEAD, cross-repository mount, upload, manifest PUT).
// It knows nothing of the image store: blobs go to a Writable or a file the caller names.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LoomError } from '../../util/errors.ts';
import { Authorizer, parseChallenges, type Credentials } from './auth.ts';
import { resolveEndpoint, type Endpoint, type RegistryOptions } from './endpoint.ts';
import { registryError } from './errors.ts';
import { transferred } from './memory.ts';
import { MANIFEST_ACCEPT, checkDigest, isIndex, manifestType, pickPlatform, parseManifest, type Descriptor, type ImageManifest, type ManifestIndex } from './manifest.ts';
import { readBuffer, readText, Transport, TransportError, type Response } from './transport.ts';

export type Progress = (bytes: number) => void;

export interface FetchedManifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

export interface ResolvedImage {
  /** the digest the reference resolved to (of the list when it was one: what `docker pull` prints) */
  digest: string;
  /** the image manifest chosen (linux/amd64 from a list) */
  manifest: ImageManifest;
  manifestDigest: string;
  manifestBytes: Buffer;
  manifestType: string;
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Passes bytes on while hashing them; fails at the end (nothing trusted) when the digest or size differ. */
export class VerifyDigest extends Transform {
  /** null when the consumer hashes the bytes itself (the image store does): then only the size is checked */
  private readonly hash: ReturnType<typeof createHash> | null;
  private readonly want: string;
  private readonly size?: number;
  private readonly onProgress?: Progress;
  bytes = 0;
  constructor(want: string, size?: number, onProgress?: Progress, hash = true) {
    super();
    this.want = want;
    this.size = size;
    this.onProgress = onProgress;
    this.hash = hash ? createHash('sha256') : null;
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.hash?.update(chunk);
    this.bytes += chunk.length;
    transferred(chunk.length);
    if (this.size !== undefined && this.bytes > this.size) return cb(verifyError(this.want));
    this.onProgress?.(this.bytes);
    cb(null, chunk);
  }
  /**
   * After a consumer failed on the bytes: were they all there and not what the digest says? (The hash has
   * seen every byte the consumer saw, whether or not the stream got to end.)
   */
  mismatched(): boolean {
    return !!this.hash && this.bytes === this.size && `sha256:${this.hash.copy().digest('hex')}` !== this.want;
  }

  override _flush(cb: TransformCallback): void {
    const hashOk = !this.hash || `sha256:${this.hash.digest('hex')}` === this.want;
    cb(hashOk && (this.size === undefined || this.bytes === this.size) ? null : verifyError(this.want));
  }
}

/** moby's words when a blob's bytes do not match its digest. */
export const verifyError = (digest: string) => new LoomError(500, `filesystem layer verification failed for digest ${digest}`);

export class RegistryClient {
  readonly domain: string;
  readonly ep: Endpoint;
  readonly auth: Authorizer;
  private readonly transport: Transport;
  private base!: URL;
  private pinged = false;
  private readonly ownsTransport: boolean;

  private constructor(ep: Endpoint, transport: Transport | undefined, creds: Credentials, lookup: RegistryOptions['lookup']) {
    this.domain = ep.domain;
    this.ep = ep;
    this.ownsTransport = !transport;
    this.transport = transport ?? new Transport(lookup);
    this.auth = new Authorizer(this.transport, ep, creds);
  }

  static async open(domain: string, opts: RegistryOptions, creds: Credentials = {}, transport?: Transport): Promise<RegistryClient> {
    const ep = await resolveEndpoint(domain, opts);
    return new RegistryClient(ep, transport, creds, opts.lookup);
  }

  /** The base URL in use (after ping): https://host or, for an insecure registry without TLS, http://host. */
  get baseUrl(): URL {
    return this.base;
  }

  /**
   * GET /v2/: picks the scheme (HTTPS; an insecure registry falls back to HTTP as dockerd does) and reads
   * the auth challenges. Returns the status (200, or 401 with challenges).
   */
  async ping(): Promise<number> {
    const schemes: ('https' | 'http')[] = this.ep.insecure ? (this.transport.schemes.get(this.ep.host) === 'http' ? ['http', 'https'] : ['https', 'http']) : ['https'];
    let last: unknown;
    for (const s of schemes) {
      const url = new URL(`${s}://${this.ep.host}/v2/`);
      try {
        const res = await this.transport.send(this.ep, { method: 'GET', url });
        res.body.resume();
        if (this.ep.insecure) this.transport.schemes.set(this.ep.host, s);
        this.base = new URL(`${s}://${this.ep.host}`);
        this.auth.challenges = res.status === 401 ? parseChallenges(res.headers['www-authenticate']) : [];
        this.pinged = true;
        return res.status;
      } catch (e) {
        last = e;
        if (!(e instanceof TransportError)) throw e;
      }
    }
    throw last;
  }

  private async ready(): Promise<void> {
    if (!this.pinged) await this.ping();
  }

  /** One authorized request to the registry's API. */
  async request(method: string, pathOrUrl: string | URL, scopes: string[], headers: Record<string, string> = {}, body?: Buffer | Readable): Promise<Response> {
    await this.ready();
    const url = typeof pathOrUrl === 'string' ? new URL(pathOrUrl, this.base) : pathOrUrl;
    const authz = await this.auth.header(scopes, method, url);
    return this.transport.send(this.ep, { method, url, headers: { ...headers, ...(authz ? { Authorization: authz } : {}) }, body });
  }

  /**
   * Checks credentials as moby's loginV2: the auth the registry asks for, then GET /v2/ must answer 200.
   * Returns the identity token (refresh token) when the token server gave one.
   */
  async login(): Promise<string> {
    const status = await this.ping();
    const url = new URL('/v2/', this.base);
    if (status === 200 && !this.auth.challenges.length) return '';
    const bearer = this.auth.challenges.find((c) => c.scheme === 'bearer');
    let authz: string | undefined;
    if (bearer) authz = `Bearer ${await this.auth.token(bearer, [], { offline: true })}`;
    else authz = await this.auth.header([], 'GET', url).catch(() => undefined);
    const res = await this.transport.send(this.ep, { method: 'GET', url, headers: authz ? { Authorization: authz } : {} });
    res.body.resume();
    if (res.status !== 200) throw new LoomError(401, `login attempt to ${url.href} failed with status: ${res.status} ${res.statusText}`);
    return this.auth.refreshToken;
  }

  repo(name: string, actions: ('pull' | 'push')[] = ['pull']): Repository {
    return new Repository(this, name, actions);
  }

  /** Ends the client's own connections (a shared transport stays open). */
  close(): void {
    if (this.ownsTransport) this.transport.close();
  }
}

export class Repository {
  readonly client: RegistryClient;
  readonly name: string;
  private readonly scopes: string[];

  constructor(client: RegistryClient, name: string, actions: ('pull' | 'push')[]) {
    this.client = client;
    this.name = name;
    this.scopes = [`repository:${name}:${actions.join(',')}`];
  }

  private async fail(res: Response, what: string): Promise<never> {
    const text = res.status === 204 ? '' : await readText(res).catch(() => '');
    throw registryError(res.status, res.statusText, text, what);
  }

  /** GET a manifest by tag or digest, verified: the digest of its bytes must match the one asked for. */
  async getManifest(ref: string, accept = MANIFEST_ACCEPT): Promise<FetchedManifest> {
    const byDigest = ref.startsWith('sha256:');
    if (byDigest) checkDigest(ref);
    const res = await this.client.request('GET', `/v2/${this.name}/manifests/${ref}`, this.scopes, { Accept: accept });
    if (res.status !== 200) await this.fail(res, `${this.name}:${ref}`);
    const bytes = await readBuffer(res);
    const digest = sha256(bytes);
    const claimed = res.headers['docker-content-digest'];
    if (byDigest && digest !== ref) throw new LoomError(500, `manifest verification failed for digest ${ref}`);
    if (typeof claimed === 'string' && claimed.startsWith('sha256:') && claimed !== digest) throw new LoomError(500, `manifest verification failed for digest ${claimed}`);
    return { digest, mediaType: manifestType(res.headers['content-type'], bytes), bytes };
  }

  /** Tag or digest → the linux/amd64 image manifest (through a list or index when there is one). */
  async resolve(ref: string): Promise<ResolvedImage> {
    const top = await this.getManifest(ref);
    let m = top;
    if (isIndex(top.mediaType)) {
      const d = pickPlatform(JSON.parse(top.bytes.toString('utf8')) as ManifestIndex);
      m = await this.getManifest(d.digest);
      if (isIndex(m.mediaType)) throw new LoomError(500, `${d.digest}: a manifest list inside a manifest list`);
    }
    return { digest: top.digest, manifest: parseManifest(m.bytes), manifestDigest: m.digest, manifestBytes: m.bytes, manifestType: m.mediaType };
  }

  /** GET /v2/<name>/tags/list (every page, following Link headers). */
  async listTags(): Promise<string[]> {
    const tags: string[] = [];
    let next: string | URL | undefined = `/v2/${this.name}/tags/list`;
    for (let pages = 0; next && pages < 100; pages++) {
      const res = await this.client.request('GET', next, this.scopes, { Accept: 'application/json' });
      if (res.status !== 200) await this.fail(res, `tags of ${this.name}`);
      const body = JSON.parse(await readText(res)) as { tags?: string[] | null };
      tags.push(...(body.tags ?? []));
      const link = /<([^>]+)>;\s*rel="?next"?/.exec(String(res.headers.link ?? ''));
      next = link ? new URL(link[1]!, this.client.baseUrl) : undefined;
    }
    return tags;
  }

  /** HEAD of a blob: its size when the registry has it, undefined when it does not. */
  async blobExists(digest: string): Promise<number | undefined> {
    const res = await this.client.request('HEAD', `/v2/${this.name}/blobs/${digest}`, this.scopes);
    res.body.resume();
    if (res.status === 200) return Number(res.headers['content-length'] ?? 0);
    if (res.status === 404) return undefined;
    return this.fail(res, `blob ${digest}`);
  }

  /**
   * The blob's bytes as a stream that errors at its end unless they match the digest (and size): a consumer
   * keeps what it wrote only when the stream ended cleanly. Redirects (blob storage) are followed.
   */
  async openBlob(desc: { digest: string; size?: number }, onProgress?: Progress, opts: { consumerHashes?: boolean } = {}): Promise<VerifyDigest> {
    checkDigest(desc.digest);
    const res = await this.client.request('GET', `/v2/${this.name}/blobs/${desc.digest}`, this.scopes);
    if (res.status !== 200) await this.fail(res, `blob ${desc.digest}`);
    const v = new VerifyDigest(desc.digest, desc.size, onProgress, !opts.consumerHashes);
    res.body.on('error', (e) => v.destroy(e));
    return res.body.pipe(v);
  }

  /** A small blob (an image config) read whole and verified. */
  async getBlob(desc: { digest: string; size?: number }, limit = 16 << 20): Promise<Buffer> {
    if (desc.size !== undefined && desc.size > limit) throw new LoomError(500, `blob ${desc.digest} is larger than ${limit} bytes`);
    const s = await this.openBlob(desc);
    const chunks: Buffer[] = [];
    for await (const c of s as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks);
  }

  /** Downloads a blob to `file`, written as file.partial and renamed once verified; nothing is left otherwise. */
  async downloadBlob(desc: { digest: string; size?: number }, file: string, onProgress?: Progress): Promise<void> {
    const tmp = `${file}.partial-${process.pid}`;
    try {
      await pipeline(await this.openBlob(desc, onProgress), fs.createWriteStream(tmp));
      fs.renameSync(tmp, file);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw e;
    }
  }

  /**
   * Cross-repository mount: POST .../blobs/uploads/?mount=DIGEST&from=REPO. True when the registry mounted
   * it (201); otherwise the upload it opened instead is cancelled and false returned.
   */
  async mountBlob(digest: string, from: string): Promise<boolean> {
    const scopes = [...this.scopes, `repository:${from}:pull`];
    const res = await this.client.request('POST', `/v2/${this.name}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`, scopes, { 'Content-Length': '0' });
    res.body.resume();
    if (res.status === 201) return true;
    if (res.status === 202 && res.headers.location) {
      const del = await this.client.request('DELETE', new URL(res.headers.location, this.client.baseUrl), this.scopes).catch(() => null);
      del?.body.resume();
      return false;
    }
    if (res.status === 401 || res.status === 403 || res.status === 404) return false;
    return this.fail(res, `mount of ${digest} from ${from}`);
  }

  /**
   * Uploads a blob: POST opens the session, then either one PATCH carrying the whole stream (what dockerd
   * does) or PATCHes of `chunkSize` bytes with Content-Range, then PUT ?digest= closes it. `open()` gives the
   * bytes; the digest is checked by the registry (it refuses a mismatch with DIGEST_INVALID).
   */
  async uploadBlob(desc: { digest: string; size: number }, open: () => Readable, opts: { chunkSize?: number; monolithic?: boolean; onProgress?: Progress } = {}): Promise<void> {
    checkDigest(desc.digest);
    const start = await this.client.request('POST', `/v2/${this.name}/blobs/uploads/`, this.scopes, { 'Content-Length': '0' });
    start.body.resume();
    if (start.status !== 202 || !start.headers.location) return this.fail(start, `upload of ${desc.digest}`);
    let location = new URL(start.headers.location, this.client.baseUrl);
    const counted = (src: Readable) => {
      let n = 0;
      const t = new Transform({ transform(c: Buffer, _e, cb) { n += c.length; transferred(c.length); opts.onProgress?.(n); cb(null, c); } });
      src.on('error', (e) => t.destroy(e));
      return src.pipe(t);
    };
    try {
      if (opts.monolithic) {
        const put = new URL(location);
        put.searchParams.set('digest', desc.digest);
        const res = await this.client.request('PUT', put, this.scopes, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(desc.size) }, counted(open()));
        if (res.status !== 201) return await this.fail(res, `upload of ${desc.digest}`);
        res.body.resume();
        return;
      }
      if (opts.chunkSize) {
        let offset = 0;
        for await (const chunk of chunks(open(), opts.chunkSize)) {
          const res = await this.client.request('PATCH', location, this.scopes, {
            'Content-Type': 'application/octet-stream', 'Content-Range': `${offset}-${offset + chunk.length - 1}`,
          }, chunk);
          if (res.status !== 202) return await this.fail(res, `upload of ${desc.digest}`);
          res.body.resume();
          offset += chunk.length;
          opts.onProgress?.(offset);
          if (res.headers.location) location = new URL(res.headers.location, this.client.baseUrl);
        }
      } else {
        const res = await this.client.request('PATCH', location, this.scopes, { 'Content-Type': 'application/octet-stream' }, counted(open()));
        if (res.status !== 202) return await this.fail(res, `upload of ${desc.digest}`);
        res.body.resume();
        if (res.headers.location) location = new URL(res.headers.location, this.client.baseUrl);
      }
      const put = new URL(location);
      put.searchParams.set('digest', desc.digest);
      const res = await this.client.request('PUT', put, this.scopes, { 'Content-Length': '0' }, Buffer.alloc(0));
      if (res.status !== 201) return await this.fail(res, `upload of ${desc.digest}`);
      res.body.resume();
    } catch (e) {
      // the registry drops an abandoned session after a while; cancel it now
      const del = await this.client.request('DELETE', location, this.scopes).catch(() => null);
      del?.body.resume();
      throw e;
    }
  }

  /** PUT a manifest under a tag (or its digest); returns the digest the registry stored it as. */
  async putManifest(ref: string, bytes: Buffer, mediaType: string): Promise<string> {
    const res = await this.client.request('PUT', `/v2/${this.name}/manifests/${ref}`, this.scopes, { 'Content-Type': mediaType }, bytes);
    if (res.status !== 201 && res.status !== 200) return this.fail(res, `manifest ${this.name}:${ref}`);
    res.body.resume();
    const digest = sha256(bytes);
    const claimed = res.headers['docker-content-digest'];
    if (typeof claimed === 'string' && claimed !== digest) throw new LoomError(500, `registry stored manifest as ${claimed}, expected ${digest}`);
    return digest;
  }
}

/** Re-chunks a stream into pieces of `size` bytes (the last may be shorter). */
async function* chunks(src: Readable, size: number): AsyncGenerator<Buffer> {
  let buf: Buffer[] = [];
  let have = 0;
  for await (const c of src as AsyncIterable<Buffer>) {
    buf.push(c);
    have += c.length;
    while (have >= size) {
      const all = Buffer.concat(buf);
      yield all.subarray(0, size);
      buf = [all.subarray(size)];
      have = all.length - size;
    }
  }
  if (have) yield Buffer.concat(buf);
}

export type { Descriptor };
