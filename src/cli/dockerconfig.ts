// The docker CLI's credentials file, shared with it: $DOCKER_CONFIG/config.json (default ~/.docker), its
// `auths` map keyed by server address (Docker Hub's key is https://index.docker.io/v1/) with `auth` =
// base64("user:password") and, after a token login, `identitytoken`. Other keys are kept as they are; the
// file is written as the docker CLI writes it (tab-indented JSON, mode 0600, replaced atomically).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const HUB_SERVER = 'https://index.docker.io/v1/';

export interface StoredAuth { username: string; password: string; identitytoken?: string; serveraddress: string }

interface ConfigFile { auths?: Record<string, { auth?: string; identitytoken?: string; email?: string }>; [k: string]: unknown }

export function configPath(): string {
  return path.join(process.env.DOCKER_CONFIG || path.join(os.homedir(), '.docker'), 'config.json');
}

function read(): ConfigFile {
  try {
    return JSON.parse(fs.readFileSync(configPath(), 'utf8')) as ConfigFile;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new Error(`loading config file ${configPath()}: ${(e as Error).message}`);
  }
}

function write(cfg: ConfigFile): void {
  const p = configPath();
  fs.mkdirSync(path.dirname(p), { recursive: true, mode: 0o700 });
  const tmp = `${p}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(cfg, null, '\t'), { mode: 0o600 });
  fs.renameSync(tmp, p);
}

/** docker's ConvertToHostname: `https://h:5000/v2/` → `h:5000`. */
export function hostnameOf(server: string): string {
  return server.replace(/^[a-z]+:\/\//i, '').split('/')[0]!;
}

/** The key a login is filed under: Docker Hub's index URL, else the address as given (no trailing slash). */
export function serverKey(server: string | undefined): string {
  if (!server) return HUB_SERVER;
  const h = hostnameOf(server);
  if (h === 'docker.io' || h === 'index.docker.io' || h === 'registry-1.docker.io') return HUB_SERVER;
  return server.replace(/\/+$/, '');
}

/** Stored credentials for a server (matched by hostname, as the docker CLI's file store does). */
export function getAuth(server: string): StoredAuth | undefined {
  const key = serverKey(server);
  const auths = read().auths ?? {};
  const hit = auths[key] ? key : Object.keys(auths).find((k) => hostnameOf(k) === hostnameOf(key));
  if (!hit) return undefined;
  const a = auths[hit]!;
  let username = '', password = '';
  if (a.auth) {
    const s = Buffer.from(a.auth, 'base64').toString('utf8');
    const i = s.indexOf(':');
    if (i >= 0) [username, password] = [s.slice(0, i), s.slice(i + 1)];
  }
  if (!username && !a.identitytoken) return undefined;
  return { username, password, identitytoken: a.identitytoken, serveraddress: hit };
}

export function storeAuth(server: string, a: { username: string; password: string; identitytoken?: string }): void {
  const cfg = read();
  cfg.auths ??= {};
  // with an identity token the password is not kept (the docker CLI does the same)
  const entry: { auth: string; identitytoken?: string } = { auth: Buffer.from(`${a.username}:${a.identitytoken ? '' : a.password}`).toString('base64') };
  if (a.identitytoken) entry.identitytoken = a.identitytoken;
  cfg.auths[serverKey(server)] = entry;
  write(cfg);
}

/** Removes the server's credentials (every key with its hostname); false when there were none. */
export function eraseAuth(server: string): boolean {
  const cfg = read();
  const auths = cfg.auths ?? {};
  const key = serverKey(server);
  const keys = Object.keys(auths).filter((k) => k === key || hostnameOf(k) === hostnameOf(key));
  if (!keys.length) return false;
  for (const k of keys) delete auths[k];
  write(cfg);
  return true;
}

/** The X-Registry-Auth header for a registry domain (base64url JSON of the stored AuthConfig), or undefined. */
export function registryAuthHeader(domain: string): string | undefined {
  const a = getAuth(domain === 'docker.io' ? HUB_SERVER : domain);
  if (!a) return undefined;
  const json = JSON.stringify({ username: a.username, password: a.password, ...(a.identitytoken ? { identitytoken: a.identitytoken } : {}), serveraddress: a.serveraddress });
  return Buffer.from(json).toString('base64url');
}
