// br_netfilter: whether frames bridged between two ports of one bridge are handed to the IPv4/IPv6
// netfilter hooks — and so pay for conntrack and loom's forward chain on every frame. This kernel has it
// built in and on (net.bridge.bridge-nf-call-iptables=1 in every namespace), as do hosts where Docker or
// Kubernetes loaded it.
//
// loom needs it only for icc=false: "no traffic between two containers of this network" is a rule on
// bridged traffic (links under icc=false too). Everything else loom does is routed traffic (published
// ports, isolation between networks, the way out), which meets the IP hooks anyway; a container reaching
// a published port of its own network is masqueraded (see firewall/ruleset.ts), so the reply is routed
// back too. So loom turns the namespace-wide switch off and asks for the hooks per bridge instead, on
// icc=false bridges only (IFLA_BR_NF_CALL_IPTABLES: the kernel hands a bridge's frames to the IP hooks
// when either is on). Measured here: ~10% less CPU per byte container to container (BENCHMARKS.md).
//
// The switch is the whole namespace's, and other engines' bridges may rely on it (Kubernetes' kube-proxy
// DNATs service traffic between pods of one bridge and needs the replies seen). `auto` (the default) leaves
// it alone when the namespace has a bridge that is not loom's at start; `keep` never touches it; `off`
// always turns it off. Docker sets it to 1 when it needs it, and loom stays correct either way: its forward
// chain accepts bridged traffic of icc=true networks.
import fs from 'node:fs';
import { Rtnl } from '../kernel/rtnl.ts';
import { readSysctl, writeSysctl } from '../kernel/sysctl.ts';
import { RETIRED_PREFIX } from './bridge.ts';
import type { Logger } from '../util/log.ts';

export const BR_NETFILTER_MODES = ['auto', 'off', 'keep'] as const;
export type BrNetfilterMode = (typeof BR_NETFILTER_MODES)[number];

const KEYS = ['net/bridge/bridge-nf-call-iptables', 'net/bridge/bridge-nf-call-ip6tables'];

/** br_netfilter is present (built in, or its module loaded): /proc/sys/net/bridge exists. */
export const brNetfilterPresent = (): boolean => fs.existsSync('/proc/sys/net/bridge');

export interface BrNetfilterOutcome {
  /** what the namespace-wide switch is now: off, on (kept), or absent (no br_netfilter at all) */
  state: 'off' | 'on' | 'absent';
  /** why, for the log and `info` */
  reason: string;
}

export async function settleBrNetfilter(mode: BrNetfilterMode, ownBridges: Iterable<string>, log?: Logger): Promise<BrNetfilterOutcome> {
  if (!brNetfilterPresent()) return { state: 'absent', reason: 'br_netfilter is not loaded: bridged frames never meet the IP hooks' };
  const now = () => (KEYS.every((k) => readSysctl(k) === '0') ? 'off' : 'on');
  if (mode === 'keep') return { state: now(), reason: '--br-netfilter=keep' };
  if (mode === 'auto') {
    const own = new Set(ownBridges);
    const rt = Rtnl.open();
    let foreign: string[];
    try {
      // a retired bridge of loom's (renamed, its deletion pending since before a crash) is loom's too
      foreign = (await rt.listLinks()).filter((l) => l.kind === 'bridge' && !own.has(l.name) && !l.name.startsWith(RETIRED_PREFIX)).map((l) => l.name);
    } finally {
      rt.close();
    }
    if (foreign.length) {
      const state = now();
      return { state, reason: `left as it is (${state}): bridge(s) not loom's in this namespace may rely on it: ${foreign.join(', ')}` };
    }
  }
  for (const k of KEYS) {
    if (readSysctl(k) === '0') continue;
    writeSysctl(k, '0');
    log?.info({ sysctl: k.replace(/\//g, '.') }, 'bridged traffic no longer goes through the IP hooks (icc=false bridges ask for them themselves)');
  }
  return { state: 'off', reason: mode === 'off' ? '--br-netfilter=off' : 'no other bridge in this namespace' };
}
