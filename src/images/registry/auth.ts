// Registry authentication as the distribution client does it: a GET /v2/ "ping" reads the registry's
// WWW-Authenticate challenges; a Bearer challenge sends the client to the token server (realm) for a token
// with the scopes it needs (anonymous, with basic credentials, or with an identity token as OAuth refresh
// token), cached per scope set until it expires; a Basic challenge is answered with the credentials.
import { LoomError } from '../../util/errors.ts';
import type { Endpoint } from './endpoint.ts';
import { registryError } from './errors.ts';
import { readText, type Transport } from './transport.ts';

/** What the docker CLI sends in X-Registry-Auth (and keeps in config.json), decoded. */
export interface Credentials {
  username?: string;
  password?: string;
  /** an OAuth refresh token from an earlier login (IdentityToken) */
  identitytoken?: string;
  /** a bearer token to use as is */
  registrytoken?: string;
}

export interface Challenge { scheme: string; params: Record<string, string> }

/** `Bearer realm="https://a/token",service="reg",scope="repository:x:pull", Basic realm="r"` → challenges. */
export function parseChallenges(headers: string | string[] | undefined): Challenge[] {
  const out: Challenge[] = [];
  for (const h of Array.isArray(headers) ? headers : headers ? [headers] : []) {
    const re = /([A-Za-z][\w-]*)(?:\s+((?:[\w-]+\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?\s*)+))?/g;
    let m: RegExpExecArray | null;
    while ((m = re.exec(h))) {
      const params: Record<string, string> = {};
      const pre = /([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
      let p: RegExpExecArray | null;
      while ((p = pre.exec(m[2] ?? ''))) params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
      out.push({ scheme: m[1]!.toLowerCase(), params });
    }
  }
  return out;
}

interface CachedToken { token: string; expires: number }

export class Authorizer {
  private readonly transport: Transport;
  private readonly ep: Endpoint;
  readonly creds: Credentials;
  challenges: Challenge[] = [];
  private readonly tokens = new Map<string, CachedToken>();
  /** a refresh token the token server handed out (login asks for one) */
  refreshToken = '';

  constructor(transport: Transport, ep: Endpoint, creds: Credentials) {
    this.transport = transport;
    this.ep = ep;
    this.creds = creds;
  }

  private hasBasic(): boolean {
    return !!(this.creds.username || this.creds.password);
  }

  private basic(): string {
    return `Basic ${Buffer.from(`${this.creds.username ?? ''}:${this.creds.password ?? ''}`).toString('base64')}`;
  }

  /** The Authorization header for requests needing `scopes`; undefined when the registry asked for none. */
  async header(scopes: string[], method: string, url: URL): Promise<string | undefined> {
    if (this.creds.registrytoken) return `Bearer ${this.creds.registrytoken}`;
    const bearer = this.challenges.find((c) => c.scheme === 'bearer');
    if (bearer) return `Bearer ${await this.token(bearer, scopes)}`;
    if (this.challenges.some((c) => c.scheme === 'basic')) {
      // distribution's basic handler: without credentials the request is not even sent
      if (!this.hasBasic()) throw new LoomError(401, `${method[0]}${method.slice(1).toLowerCase()} "${url.href}": no basic auth credentials`);
      return this.basic();
    }
    return undefined;
  }

  /** A token for these scopes from the Bearer challenge's realm (cached until shortly before it expires). */
  async token(ch: Challenge, scopes: string[], opts: { offline?: boolean } = {}): Promise<string> {
    const realm = ch.params.realm;
    if (!realm) throw new LoomError(500, `${this.ep.domain}: bearer challenge without a realm`);
    const key = [...scopes].sort().join(' ');
    const hit = this.tokens.get(key);
    if (hit && hit.expires > Date.now()) return hit.token;
    const url = new URL(realm);
    let res;
    const useRefresh = !!this.creds.identitytoken;
    if (useRefresh) {
      // The OAuth2 refresh-token grant the docker engine uses with an identity token
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: this.creds.identitytoken!, client_id: 'docker', service: ch.params.service ?? '' });
      if (scopes.length) form.set('scope', scopes.join(' '));
      res = await this.transport.send(this.ep, { method: 'POST', url, headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: Buffer.from(form.toString()) });
    } else {
      if (ch.params.service) url.searchParams.set('service', ch.params.service);
      for (const s of scopes) url.searchParams.append('scope', s);
      const headers: Record<string, string> = {};
      if (this.hasBasic()) {
        headers.Authorization = this.basic();
        url.searchParams.set('account', this.creds.username ?? '');
        if (opts.offline) {
          url.searchParams.set('client_id', 'docker');
          url.searchParams.set('offline_token', 'true');
        }
      }
      res = await this.transport.send(this.ep, { method: 'GET', url, headers });
    }
    const text = await readText(res);
    if (res.status !== 200) {
      const err = registryError(res.status, res.statusText, text, `${useRefresh ? 'Post' : 'Get'} "${url.href}"`);
      // the token server's own words (Docker Hub: {"details":"incorrect username or password"})
      let details = '';
      try { details = (JSON.parse(text) as { details?: string }).details ?? ''; } catch { /* not JSON */ }
      const msg = details ? `unauthorized: ${details}` : err.message;
      throw new LoomError(res.status === 401 || res.status === 403 ? 401 : 500, `${useRefresh ? 'Post' : 'Get'} "${url.href}": ${msg}`);
    }
    let body: { token?: string; access_token?: string; expires_in?: number; refresh_token?: string };
    try {
      body = JSON.parse(text);
    } catch {
      throw new LoomError(500, `${realm}: token server answered something that is not JSON`);
    }
    const token = body.access_token || body.token;
    if (!token) throw new LoomError(500, `${realm}: token server answered without a token`);
    if (body.refresh_token) this.refreshToken = body.refresh_token;
    // distribution's minimum lifetime is 60s; keep a margin so a token never expires mid-request
    const life = Math.max(Number(body.expires_in) || 60, 60) * 1000;
    this.tokens.set(key, { token, expires: Date.now() + life - 10_000 });
    return token;
  }
}
