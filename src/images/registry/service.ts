// The daemon's registry service (moby's registry.Service): the daemon's registry options, credentials from
// the X-Registry-Auth header or a /auth body, login, and clients for pull and push.
import { LoomError, invalidParameter } from '../../util/errors.ts';
import type { Credentials } from './auth.ts';
import { RegistryClient } from './client.ts';
import { DEFAULT_CERTS_DIR, registryConfigInfo, validateInsecure, type RegistryOptions } from './endpoint.ts';
import { makeLookup } from './resolve.ts';
import { Transport } from './transport.ts';

/** What the docker CLI sends: the AuthConfig of the Engine API (X-Registry-Auth, POST /auth). */
export interface AuthConfig extends Credentials {
  auth?: string;
  email?: string;
  serveraddress?: string;
}

/**
 * X-Registry-Auth: base64url (or standard base64, which older clients send) of the AuthConfig JSON. An empty
 * or `{}` header means no credentials; one that does not decode is refused as moby refuses it.
 */
export function decodeAuthHeader(header: string | string[] | undefined): AuthConfig {
  const h = Array.isArray(header) ? header[0] : header;
  if (!h) return {};
  let cfg: AuthConfig;
  try {
    cfg = JSON.parse(Buffer.from(h.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8')) as AuthConfig;
  } catch {
    throw invalidParameter('invalid X-Registry-Auth header: must be base64url-encoded JSON');
  }
  if (!cfg || typeof cfg !== 'object') throw invalidParameter('invalid X-Registry-Auth header: must be base64url-encoded JSON');
  return withAuthField(cfg);
}

/** The `auth` field (base64 user:password, as config.json keeps it) filled into username/password. */
function withAuthField(cfg: AuthConfig): AuthConfig {
  if (cfg.auth && !cfg.username && !cfg.password) {
    const s = Buffer.from(cfg.auth, 'base64').toString('utf8');
    const i = s.indexOf(':');
    if (i > 0) return { ...cfg, username: s.slice(0, i), password: s.slice(i + 1) };
  }
  return cfg;
}

/** A login's server address → the registry's domain: `https://index.docker.io/v1/` → docker.io; `http://h:5000/` → h:5000. */
export function serverDomain(server: string | undefined): string {
  const s = (server ?? '').trim();
  if (!s) return 'docker.io';
  const host = s.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
  if (!host) throw invalidParameter(`invalid registry address: ${server}`);
  if (host === 'index.docker.io' || host === 'registry-1.docker.io' || host === 'docker.io') return 'docker.io';
  return host;
}

export class RegistryService {
  readonly opts: RegistryOptions;
  private readonly transport: Transport;

  constructor(o: { insecure?: string[]; certsDir?: string; hostsFile: string; resolvConf: string }) {
    this.opts = {
      insecure: validateInsecure(o.insecure ?? []),
      certsDir: o.certsDir ?? DEFAULT_CERTS_DIR,
      lookup: makeLookup(o.hostsFile, o.resolvConf),
    };
    // one transport (keep-alive connections per registry) for the daemon's life
    this.transport = new Transport(this.opts.lookup);
  }

  info() {
    return registryConfigInfo(this.opts);
  }

  open(domain: string, creds: Credentials = {}): Promise<RegistryClient> {
    return RegistryClient.open(domain, this.opts, creds, this.transport);
  }

  /** POST /auth: the credentials checked against the registry; its identity token when it gave one. */
  async login(cfg: AuthConfig): Promise<{ IdentityToken: string; Status: string }> {
    const creds = withAuthField(cfg);
    const domain = serverDomain(creds.serveraddress);
    if (!creds.identitytoken && !creds.username) throw new LoomError(401, 'Username is required');
    const c = await this.open(domain, { username: creds.username, password: creds.password, identitytoken: creds.identitytoken });
    const token = await c.login();
    return { IdentityToken: token, Status: 'Login Succeeded' };
  }

  close(): void {
    this.transport.close();
  }
}
