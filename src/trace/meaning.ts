// What a rule of loom's table means in Docker's terms. loom's rules carry comments naming their purpose
// and the network they belong to (src/firewall/ruleset.ts); this turns a hit into a sentence. Pure.
import type { TraceEvent } from './nftrace.ts';

export interface MeaningContext {
  /** bridge device → network name */
  bridgeNet: Map<string, string>;
  /** network id prefix (12) → network name */
  idNet: Map<string, string>;
  /** ifindex → interface name (host namespace) */
  ifname: Map<number, string>;
  /** published ports: "tcp 8080" → "web:80" */
  published: Map<string, string>;
  /** the probe's destination as it was sent (before DNAT) */
  original?: { daddr: string; dport?: number; proto: string };
}

const comment = (rule: string) => /comment "([^"]*)"/.exec(rule)?.[1] ?? '';
const netOf = (ctx: MeaningContext, id: string) => ctx.idNet.get(id) ?? id;

function side(ctx: MeaningContext, ifindex?: number): string {
  const n = ifindex ? ctx.ifname.get(ifindex) : undefined;
  if (!n) return '?';
  return ctx.bridgeNet.get(n) ?? n;
}

/** A sentence for one trace event, or '' when it has nothing to say (a rule that only continues). */
export function meaningOf(e: TraceEvent, rule: string, ctx: MeaningContext, reply = false): string {
  if (e.table !== 'loom') {
    if (e.type === 'policy') return `policy ${e.verdict} of chain ${e.chain} in table ${e.family} ${e.table} (not loom's)`;
    if (/LOOM-FORWARD/.test(rule) || e.chain === 'LOOM-FORWARD') return `iptables filter table: loom's LOOM-FORWARD lets traffic of its bridges through (isolation is decided in loom's own table)`;
    if (e.chain === 'LOOM-USER') return `LOOM-USER (your own rules for container traffic, as Docker's DOCKER-USER): ${e.verdict ?? ''}`.trim();
    return `a rule of table ${e.family} ${e.table} (not loom's): ${e.verdict ?? 'matched'}`;
  }
  const c = comment(rule);
  const p = e.packet;
  const from = side(ctx, e.iif), to = side(ctx, e.oif);
  let m: RegExpExecArray | null;
  if ((m = /^no icc in (\w+)$/.exec(c))) return `--icc=false on network ${netOf(ctx, m[1]!)}: its containers may not talk to each other (only --link exceptions and published ports)`;
  if ((m = /^icc in (\w+)$/.exec(c))) return `inter-container communication on network ${netOf(ctx, m[1]!)} (icc=true)`;
  if (c === 'isolation between networks') return `isolation between networks ${from} and ${to}: containers of different networks may not talk to each other`;
  if ((m = /^isolation: gateway of (\w+)$/.exec(c))) return `isolation between networks ${from} and ${netOf(ctx, m[1]!)}: a container may not reach another network's gateway address`;
  if ((m = /^internal (\w+): no way out$/.exec(c))) return `internal network ${netOf(ctx, m[1]!)}: no way out`;
  if ((m = /^internal (\w+): no way in$/.exec(c))) return `internal network ${netOf(ctx, m[1]!)}: no way in`;
  if (c === 'replies into containers') return 'a reply of a connection the container made (conntrack established)';
  if (c === 'published ports') {
    const o = ctx.original;
    const target = o?.dport ? ctx.published.get(`${o.proto} ${o.dport}`) : undefined;
    const to = p ? `${p.daddr}${p.dport ? `:${p.dport}` : ''}` : 'a container';
    return `${o?.dport ? `published port ${o.dport}/${o.proto}${target ? ` → ${target}` : ''}: ` : 'published port: '}translated (DNAT) to ${to}, so it may enter network ${to === 'a container' ? '?' : side(ctx, e.oif)}`;
  }
  if (c === 'links: requests') return `--link exception on an icc=false network: ${p ? `${p.saddr} may open ${p.daddr}:${p.dport}` : 'allowed'}`;
  if (c === 'links: replies') return '--link exception: the reply of a linked connection';
  if (c === 'containers reach out' && reply) return `the reply leaves network ${from}`;
  if (c === 'containers reach out') return `outbound from network ${from}: containers may reach out (masqueraded on the way)`;
  if (c === 'nothing else into containers') return `nothing else may enter network ${to}: no published port, no --link, not a reply`;
  if ((m = /^outbound from (\w+)$/.exec(c))) return `masquerade: traffic leaving network ${netOf(ctx, m[1]!)} gets the host's address`;
  if ((m = /^hairpin in (\w+)$/.exec(c))) return `hairpin masquerade in network ${netOf(ctx, m[1]!)}: a container reached a published port of its own network`;
  if (c === "host's loopback to a published port") return "masquerade: the host's 127.0.0.1 reaching a published port";
  if (/fib daddr type local jump published/.test(rule)) return 'the destination is an address of the host: look for a published port';
  if (/dnat .* map @/.test(rule) && e.chain === 'published') {
    const key = p?.dport ? `${p.proto} ${p.dport}` : '';
    const target = ctx.published.get(key);
    return target ? `published port ${p!.dport}/${p!.proto} → ${target}` : 'published port lookup';
  }
  if (e.type === 'policy') {
    if (e.chain === 'published') return '';
    if (e.chain === 'forward' && e.verdict === 'accept') return 'chain forward: policy accept (loom only drops traffic into or out of its own bridges)';
    return `chain ${e.chain}: policy ${e.verdict}`;
  }
  return '';
}

/** Why a timeout or a reset happened, in the destination's terms, when no rule dropped the probe. */
export function noPublishedPort(dport: number | undefined, proto: string, daddr: string): string {
  return `no published port ${dport}/${proto} on ${daddr}`;
}
