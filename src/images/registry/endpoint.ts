// Where a registry is and how to talk to it, as dockerd decides (moby registry/config.go, service_v2.go):
//  - `docker.io` (and `index.docker.io`) is served by registry-1.docker.io;
//  - a registry is "insecure" when it is listed with --insecure-registry (HOST:PORT or a CIDR its address
//    falls in), or its address is in 127.0.0.0/8 (localhost): then HTTPS without verification is tried
//    first and plain HTTP after it, as dockerd does;
//  - otherwise HTTPS, verified against the system's CAs plus <certs-dir>/<host:port>/*.crt, and client
//    certificates <certs-dir>/<host:port>/*.cert with *.key (Docker's certs.d layout).
import dns from 'node:dns/promises';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import ipaddr from 'ipaddr.js';
import { invalidParameter } from '../../util/errors.ts';

export const DEFAULT_DOMAIN = 'docker.io';
export const DEFAULT_CERTS_DIR = '/etc/loom/certs.d';

export interface RegistryOptions {
  /** --insecure-registry values: HOST[:PORT] or CIDR */
  insecure: string[];
  /** Docker's certs.d layout: <dir>/<host[:port]>/{ca.crt,client.cert,client.key} */
  certsDir: string;
  /** name resolution (see resolve.ts); the system's getaddrinfo when absent */
  lookup?: (host: string) => Promise<string[]>;
}

export interface Endpoint {
  /** the name in references and in config.json (`docker.io`, `localhost:5000`) */
  domain: string;
  /** host[:port] the API is served at (`registry-1.docker.io`) */
  host: string;
  insecure: boolean;
  tls: tls.SecureContextOptions & { rejectUnauthorized: boolean };
}

/** The API host of a reference's domain: docker.io's registry is registry-1.docker.io. */
export function apiHost(domain: string): string {
  return domain === 'docker.io' || domain === 'index.docker.io' ? 'registry-1.docker.io' : domain;
}

/** The key the docker CLI files credentials under in config.json: Docker Hub's is its v1 index URL. */
export function authKey(domain: string): string {
  return domain === 'docker.io' || domain === 'index.docker.io' || domain === 'registry-1.docker.io' ? 'https://index.docker.io/v1/' : domain;
}

/** `localhost:5000` → ['localhost', '5000']; `[::1]:5000` → ['::1', '5000']. */
function splitHostPort(hp: string): [string, string | undefined] {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(hp) ?? /^([^:]+)(?::(\d+))?$/.exec(hp);
  return m ? [m[1]!, m[2]] : [hp, undefined];
}

/** Checks --insecure-registry values as dockerd does at start (a URL scheme is refused, CIDRs parsed). */
export function validateInsecure(values: string[]): string[] {
  for (const v of values) {
    if (/:\/\//.test(v)) throw invalidParameter(`insecure registry ${v} should not contain '://'`);
    if (v.includes('/')) {
      try {
        ipaddr.parseCIDR(v);
      } catch {
        throw invalidParameter(`invalid CIDR ${v} for --insecure-registry`);
      }
    }
  }
  return values;
}

/** dockerd's InsecureRegistryCIDRs (always 127.0.0.0/8) and IndexConfigs, for `info`'s RegistryConfig. */
export function registryConfigInfo(opts: RegistryOptions) {
  const cidrs = ['127.0.0.0/8', ...opts.insecure.filter((v) => v.includes('/'))];
  const index: Record<string, { Name: string; Mirrors: string[]; Secure: boolean; Official: boolean }> = {
    'docker.io': { Name: 'docker.io', Mirrors: [], Secure: true, Official: true },
  };
  for (const v of opts.insecure.filter((x) => !x.includes('/'))) index[v] = { Name: v, Mirrors: [], Secure: false, Official: false };
  return { AllowNondistributableArtifactsCIDRs: [] as string[], AllowNondistributableArtifactsHostnames: [] as string[], InsecureRegistryCIDRs: cidrs, IndexConfigs: index, Mirrors: [] };
}

async function isInsecure(host: string, opts: RegistryOptions): Promise<boolean> {
  if (opts.insecure.includes(host)) return true;
  const [name] = splitHostPort(host);
  if (opts.insecure.includes(name)) return true;
  // dockerd resolves the name and checks each address against the CIDRs (127.0.0.0/8 always among them)
  let addrs: string[];
  if (net.isIP(name)) addrs = [name];
  else if (name === 'localhost') addrs = ['127.0.0.1'];
  else {
    try {
      addrs = opts.lookup ? await opts.lookup(name) : (await dns.lookup(name, { all: true })).map((a) => a.address);
    } catch {
      return false; // unknown name: secure, and the connection then fails naming the lookup
    }
  }
  const cidrs = ['127.0.0.0/8', ...opts.insecure.filter((v) => v.includes('/'))].map((c) => ipaddr.parseCIDR(c));
  return addrs.some((a) => {
    let ip = ipaddr.parse(a);
    if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) ip = (ip as ipaddr.IPv6).toIPv4Address();
    return cidrs.some(([net, bits]) => net.kind() === ip.kind() && ip.match([net, bits] as never));
  });
}

/** Docker's certs.d files for a host: every *.crt is a CA, each *.cert needs its *.key. */
function certsFor(host: string, certsDir: string): { ca: string[]; cert?: string; key?: string } {
  const dir = path.join(certsDir, host);
  let names: string[];
  try {
    names = fs.readdirSync(dir).sort();
  } catch {
    return { ca: [] };
  }
  const ca = names.filter((n) => n.endsWith('.crt')).map((n) => fs.readFileSync(path.join(dir, n), 'utf8'));
  const certName = names.find((n) => n.endsWith('.cert'));
  if (!certName) return { ca };
  const keyName = certName.replace(/\.cert$/, '.key');
  if (!names.includes(keyName)) throw invalidParameter(`missing key ${keyName} for client certificate ${certName}. CA certificates must use the extension .crt`);
  return { ca, cert: fs.readFileSync(path.join(dir, certName), 'utf8'), key: fs.readFileSync(path.join(dir, keyName), 'utf8') };
}

let systemCAs: string[] | undefined;
export function baseCAs(): string[] {
  // Node's bundled Mozilla list plus what the system trusts (/etc/ssl/certs), as Go's crypto/x509 uses the latter
  systemCAs ??= [...new Set([...tls.getCACertificates('default'), ...tls.getCACertificates('system')])];
  return systemCAs;
}

export async function resolveEndpoint(domain: string, opts: RegistryOptions): Promise<Endpoint> {
  const host = apiHost(domain);
  const insecure = await isInsecure(host, opts);
  const c = certsFor(host, opts.certsDir);
  return {
    domain, host, insecure,
    tls: { ca: [...baseCAs(), ...c.ca], cert: c.cert, key: c.key, rejectUnauthorized: !insecure },
  };
}
