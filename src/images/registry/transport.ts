// HTTP(S) for the registry client, on node:http/node:https rather than fetch (undici): each registry needs
// its own TLS trust (system CAs plus certs.d's ca.crt) and client certificate, and its own name lookup
// (resolve.ts); node:https takes all three per agent, undici's global fetch takes none of them without its
// own Agent/Dispatcher plumbing. Responses are streamed (blobs are never held in memory).
// Transport failures are reported as Go's net/http prints them, since that is what dockerd says:
//   Get "https://reg:5000/v2/": dial tcp: lookup reg on 198.51.100.2:53: no such host
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { Readable } from 'node:stream';
import type { Endpoint } from './endpoint.ts';
import { baseCAs } from './endpoint.ts';
import { LookupError } from './resolve.ts';
import { LoomError } from '../../util/errors.ts';

export type Lookup = (host: string) => Promise<string[]>;

export interface Request {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  /** a Buffer, or a stream (sent chunked unless Content-Length is set) */
  body?: Buffer | Readable;
}

export interface Response {
  status: number;
  statusText: string;
  headers: http.IncomingHttpHeaders;
  url: URL;
  body: http.IncomingMessage;
}

/** A transport error of one request, worded as Go's url.Error: `Get "URL": cause`. */
export class TransportError extends LoomError {
  readonly causeCode: string;
  constructor(method: string, url: URL, cause: string, code: string) {
    super(500, `${method[0]}${method.slice(1).toLowerCase()} "${url.href}": ${cause}`);
    this.causeCode = code;
  }
}

function goCause(e: NodeJS.ErrnoException & { address?: string; port?: number }, url: URL): string {
  if (e instanceof LookupError) return `dial tcp: ${e.message}`;
  const addr = e.address ? `${e.address.includes(':') ? `[${e.address}]` : e.address}:${e.port}` : url.host;
  switch (e.code) {
    case 'ECONNREFUSED': return `dial tcp ${addr}: connect: connection refused`;
    case 'EHOSTUNREACH': return `dial tcp ${addr}: connect: no route to host`;
    case 'ENETUNREACH': return `dial tcp ${addr}: connect: network is unreachable`;
    case 'ETIMEDOUT': return `dial tcp ${addr}: i/o timeout`;
    case 'ECONNRESET': return `read tcp ${addr}: read: connection reset by peer`;
    case 'EPROTO':
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
      return 'http: server gave HTTP response to HTTPS client';
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
      return 'tls: failed to verify certificate: x509: certificate signed by unknown authority';
    case 'CERT_HAS_EXPIRED': return 'tls: failed to verify certificate: x509: certificate has expired or is not yet valid';
    case 'ERR_TLS_CERT_ALTNAME_INVALID': return `tls: failed to verify certificate: x509: ${e.message}`;
    default: return e.message || String(e.code);
  }
}

/**
 * A TLS context per set of trust and client certificates: building one from the ~600 system CAs costs
 * ~100 ms of CPU, which node:https would otherwise pay on every new connection.
 */
const contexts = new Map<string, tls.SecureContext>();
function secureContext(o: tls.SecureContextOptions): tls.SecureContext {
  const key = createHash('sha256').update(JSON.stringify([o.ca, o.cert, o.key])).digest('hex');
  let c = contexts.get(key);
  if (!c) contexts.set(key, (c = tls.createSecureContext(o)));
  return c;
}

const tlsKeys = new WeakMap<Endpoint, string>();
function tlsKeyOf(ep: Endpoint): string {
  let k = tlsKeys.get(ep);
  if (!k) tlsKeys.set(ep, (k = createHash('sha256').update(JSON.stringify([ep.tls.ca, ep.tls.cert, ep.tls.key, ep.tls.rejectUnauthorized])).digest('hex')));
  return k;
}

export class Transport {
  private readonly lookup?: Lookup;
  private readonly agents = new Map<string, http.Agent>();
  /** the scheme an insecure registry last answered on, tried first next time (dockerd retries both each time) */
  readonly schemes = new Map<string, 'https' | 'http'>();

  constructor(lookup?: Lookup) {
    this.lookup = lookup;
  }

  /** net.connect's lookup signature on top of ours (supports `all`, which autoSelectFamily asks for). */
  private netLookup(): net.LookupFunction | undefined {
    const lookup = this.lookup;
    if (!lookup) return undefined;
    return ((host: string, opts: { all?: boolean }, cb: (err: Error | null, addr: string | { address: string; family: number }[], family?: number) => void) => {
      lookup(host).then((addrs) => {
        const list = addrs.map((a) => ({ address: a, family: net.isIP(a) }));
        if (opts.all) cb(null, list);
        else cb(null, list[0]!.address, list[0]!.family);
      }, (e) => cb(e as Error, ''));
    }) as unknown as net.LookupFunction;
  }

  private agentFor(scheme: string, ep: Endpoint | null, host: string): http.Agent {
    const own = scheme === 'https' && ep && ep.host === host;
    // keyed by the TLS material too: certs.d is read at each pull, and a changed ca.crt takes effect
    const tlsKey = own ? tlsKeyOf(ep) : '';
    const key = `${scheme}://${host}/${tlsKey}`;
    let a = this.agents.get(key);
    if (a) return a;
    const lookup = this.netLookup();
    if (scheme === 'http') a = new http.Agent({ keepAlive: true, lookup });
    else if (own) a = new https.Agent({ keepAlive: true, lookup, secureContext: secureContext(ep.tls), rejectUnauthorized: ep.tls.rejectUnauthorized });
    // a redirect elsewhere (a blob store behind the registry): verified against the base CAs
    else a = new https.Agent({ keepAlive: true, lookup, secureContext: secureContext({ ca: baseCAs() }) });
    this.agents.set(key, a);
    return a;
  }

  /** One request; redirects (blob storage) followed for GET/HEAD, without the Authorization to another host. */
  async send(ep: Endpoint | null, req: Request, redirects = 10): Promise<Response> {
    const res = await this.once(ep, req);
    if (res.status >= 300 && res.status < 400 && res.headers.location && (req.method === 'GET' || req.method === 'HEAD') && redirects > 0) {
      res.body.resume();
      const next = new URL(res.headers.location, req.url);
      const headers = { ...req.headers };
      if (next.host !== req.url.host) delete headers.Authorization;
      return this.send(ep, { ...req, url: next, headers }, redirects - 1);
    }
    return res;
  }

  private once(ep: Endpoint | null, req: Request): Promise<Response> {
    const scheme = req.url.protocol.replace(':', '');
    const mod = scheme === 'http' ? http : https;
    return new Promise<Response>((resolve, reject) => {
      const headers: Record<string, string> = { 'User-Agent': 'loom/0.1 (docker-compatible)', ...req.headers };
      if (Buffer.isBuffer(req.body)) headers['Content-Length'] = String(req.body.length);
      const r = mod.request(req.url, { method: req.method, headers, agent: this.agentFor(scheme, ep, req.url.host) }, (res) => {
        resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', headers: res.headers, url: req.url, body: res });
      });
      r.on('error', (e: NodeJS.ErrnoException) => reject(new TransportError(req.method, req.url, goCause(e, req.url), e.code ?? (e instanceof LookupError ? 'ENOTFOUND' : 'EUNKNOWN'))));
      if (req.body instanceof Readable) {
        req.body.on('error', (e) => r.destroy(e));
        req.body.pipe(r);
      } else r.end(req.body);
    });
  }

  close(): void {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }
}

export async function readText(res: Response, limit = 4 << 20): Promise<string> {
  return (await readBuffer(res, limit)).toString('utf8');
}

export async function readBuffer(res: Response, limit = 4 << 20): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) {
      res.body.destroy();
      throw new LoomError(500, `${res.url.href}: response larger than ${limit} bytes`);
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}
