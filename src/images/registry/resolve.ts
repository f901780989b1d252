// Name resolution for registry hosts the way dockerd's Go resolver does it: the hosts file first, then the
// nameservers of resolv.conf (with its search domains and ndots). It reads the daemon's --hosts-file and --resolv-conf (which default to the
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

interface ResolvConf { servers: string[]; search: string[]; ndots: number }

function resolvConf(file: string): ResolvConf {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch { /* none */ }
  const lines = text.split('\n').map((l) => l.replace(/[#;].*/, '').trim().split(/\s+/));
  const servers = lines.filter((f) => f[0] === 'nameserver' && net.isIP(f[1] ?? '') !== 0).map((f) => f[1]!);
  const search = lines.filter((f) => f[0] === 'search' || f[0] === 'domain').flatMap((f) => f.slice(1)).filter(Boolean);
  const nd = lines.filter((f) => f[0] === 'options').flatMap((f) => f.slice(1)).map((o) => /^ndots:(\d+)$/.exec(o)?.[1]).find(Boolean);
  return { servers: servers.length ? servers : ['127.0.0.1'], search, ndots: nd ? Number(nd) : 1 };
}

/** The names to ask for, in Go's order: as is first when it has ndots dots, else the search domains first. */
function candidates(host: string, rc: ResolvConf): string[] {
  if (host.endsWith('.')) return [host.slice(0, -1)];
  const searched = rc.search.map((d) => `${host}.${d}`);
  return (host.split('.').length - 1) >= rc.ndots ? [host, ...searched] : [...searched, host];
}

/** A lookup function: IPv4 addresses first (loom publishes IPv4 only), then IPv6. */
export function makeLookup(hostsFile: string, resolvConfFile: string): (host: string) => Promise<string[]> {
  return async (host) => {
    if (net.isIP(host)) return [host];
    if (host === 'localhost') return ['127.0.0.1'];
    const fromHosts = hostsEntries(hostsFile, host);
    if (fromHosts.length) return fromHosts;
    const rc = resolvConf(resolvConfFile);
    const r = new dns.promises.Resolver({ timeout: 3000, tries: 2 });
    r.setServers(rc.servers);
    const server = `${rc.servers[0]!.includes(':') ? `[${rc.servers[0]}]` : rc.servers[0]}:53`;
    let e: NodeJS.ErrnoException | null = null;
    for (const name of candidates(host, rc)) {
      const [v4, v6] = await Promise.allSettled([r.resolve4(name), r.resolve6(name)]);
      const addrs = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
      if (addrs.length) return addrs;
      e = (v4.status === 'rejected' ? v4.reason : v6.status === 'rejected' ? v6.reason : null) as NodeJS.ErrnoException | null;
      // a server that cannot be reached will not answer for the next name either
      if (e && !/NOTFOUND|NODATA/.test(e.code ?? '')) break;
    }
    const code = e?.code ?? 'ENOTFOUND';
    const cause = code === 'ENOTFOUND' || code === 'ENODATA' || code === 'NOTFOUND' || code === 'NODATA' ? 'no such host'
      : code === 'ECONNREFUSED' || code === 'CONNREFUSED' ? `read udp: connection refused`
      : code === 'ETIMEOUT' || code === 'TIMEOUT' ? 'i/o timeout'
      : code === 'ESERVFAIL' || code === 'SERVFAIL' ? 'server misbehaving'
      : (e?.message ?? code);
    throw new LookupError(host, server, cause, code);
  };
}
