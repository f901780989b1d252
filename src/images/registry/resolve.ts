// Name resolution for registry hosts the way dockerd's Go resolver does it: the hosts file first, then the
// nameservers of resolv.conf. It reads the daemon's --hosts-file and --resolv-conf (which default to the
// system's files) instead of calling getaddrinfo, so a daemon given its own resolver configuration (as the
// test sandboxes do) resolves with it, and a failure can name the server asked, as Go's does.
import dns from 'node:dns';
import fs from 'node:fs';
import net from 'node:net';

export class LookupError extends Error {
  readonly code: string;
  constructor(host: string, server: string, cause: string, code: string) {
    super(`lookup ${host}${server ? ` on ${server}` : ''}: ${cause}`);
    this.code = code;
  }
}

function hostsEntries(file: string, name: string): string[] {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch { /* no hosts file */ }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const f = line.replace(/#.*/, '').trim().split(/\s+/);
    if (f.length > 1 && net.isIP(f[0]!) && f.slice(1).some((n) => n.toLowerCase() === name.toLowerCase())) out.push(f[0]!);
  }
  return out;
}

function nameservers(file: string): string[] {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch { /* none */ }
  const ns = text.split('\n').map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1]).filter((x): x is string => !!x && net.isIP(x) !== 0);
  return ns.length ? ns : ['127.0.0.1'];
}

/** A lookup function: IPv4 addresses first (loom publishes IPv4 only), then IPv6. */
export function makeLookup(hostsFile: string, resolvConf: string): (host: string) => Promise<string[]> {
  return async (host) => {
    if (net.isIP(host)) return [host];
    if (host === 'localhost') return ['127.0.0.1'];
    const fromHosts = hostsEntries(hostsFile, host);
    if (fromHosts.length) return fromHosts;
    const servers = nameservers(resolvConf);
    const r = new dns.promises.Resolver({ timeout: 3000, tries: 2 });
    r.setServers(servers);
    const server = `${servers[0]!.includes(':') ? `[${servers[0]}]` : servers[0]}:53`;
    const [v4, v6] = await Promise.allSettled([r.resolve4(host), r.resolve6(host)]);
    const addrs = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
    if (addrs.length) return addrs;
    const e = (v4.status === 'rejected' ? v4.reason : v6.status === 'rejected' ? v6.reason : null) as NodeJS.ErrnoException | null;
    const code = e?.code ?? 'ENOTFOUND';
    const cause = code === 'ENOTFOUND' || code === 'ENODATA' || code === 'NOTFOUND' || code === 'NODATA' ? 'no such host'
      : code === 'ECONNREFUSED' || code === 'CONNREFUSED' ? `read udp: connection refused`
      : code === 'ETIMEOUT' || code === 'TIMEOUT' ? 'i/o timeout'
      : code === 'ESERVFAIL' || code === 'SERVFAIL' ? 'server misbehaving'
      : (e?.message ?? code);
    throw new LookupError(host, server, cause, code);
  };
}
