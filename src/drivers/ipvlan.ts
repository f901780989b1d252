// The ipvlan driver (libnetwork's drivers/ipvlan): containers as ports of a host interface that share
// its MAC address. L2 mode (default): ports on the parent's segment, default route via the gateway;
// L3 / L3S: the parent routes, each port's default route is the port itself ("dev eth0"). Flags:
// bridge (default), private, vepa. Needs the kernel's ipvlan support: where it is absent (as on the
// machine loom is built on) creating an endpoint fails naming it, and nothing is left behind.
import { ipvlanData, IPVLAN_FLAGS, IPVLAN_MODES, Rtnl, type LinkData } from '../kernel/rtnl.ts';
import type { EndpointRecord, NetworkRecord } from '../core/types.ts';
import { invalidParameter } from '../util/errors.ts';
import { PARENT_OPT, parentConflict, UnderlayDriver, type UnderlayConfig } from './underlay.ts';
import { configureInterface } from '../kernel/rtnl.ts';
import { endpointInterface } from './driver.ts';

export const IPVLAN_MODE_OPT = 'ipvlan_mode';
export const IPVLAN_FLAG_OPT = 'ipvlan_flag';

/** Docker's parseNetworkOptions of the ipvlan driver: mode l2|l3|l3s (l2), flag bridge|private|vepa (bridge). */
export function parseIpvlanOptions(options: Record<string, string>, internal: boolean): UnderlayConfig {
  const mode = options[IPVLAN_MODE_OPT] || 'l2';
  if (!(mode in IPVLAN_MODES)) throw invalidParameter(`requested ipvlan mode '${mode}' is not valid, 'l2' mode is the ipvlan driver default`);
  const flag = options[IPVLAN_FLAG_OPT] || 'bridge';
  if (!(flag in IPVLAN_FLAGS)) throw invalidParameter(`requested ipvlan flag '${flag}' is not valid, 'bridge' is the ipvlan driver default`);
  const parent = options[PARENT_OPT] ?? '';
  if (parent === 'lo') throw invalidParameter('loopback interface is not a valid ipvlan parent link');
  return { parent, mode, flag, internal: internal || parent === '' };
}

export class IpvlanDriver extends UnderlayDriver {
  readonly type = 'ipvlan' as const;
  protected readonly dummyPrefix = 'di-';
  protected readonly ownMac = false;

  parseOptions(options: Record<string, string>, internal: boolean): UnderlayConfig {
    return parseIpvlanOptions(options, internal);
  }

  /** Docker: one ipvlan network per parent (the message names the other network's dummy name). */
  protected checkShared(cfg: UnderlayConfig, _net: NetworkRecord, sameParent: NetworkRecord[]): void {
    const o = sameParent[0];
    if (o) throw parentConflict(`network ${this.dummyPrefix}${o.id.slice(0, 12)} is already using parent interface ${cfg.parent || this.parentOf(o)}`);
  }

  protected linkData(cfg: UnderlayConfig): LinkData[] {
    return ipvlanData(cfg.mode as keyof typeof IPVLAN_MODES, cfg.flag as keyof typeof IPVLAN_FLAGS);
  }

  /** L3/L3S: the default routes go through the port itself, no gateway (Docker's ifaceGateway). */
  protected override async configure(cfg: UnderlayConfig, ep: EndpointRecord, netnsPath: string, defaultRoute: boolean): Promise<void> {
    if (cfg.mode === 'l2') return super.configure(cfg, ep, netnsPath, defaultRoute);
    await configureInterface(netnsPath, endpointInterface(ep, false, cfg.internal));
    ep.gateway4 = undefined;
    ep.gateway6 = undefined;
    if (!defaultRoute || cfg.internal) return;
    const r = Rtnl.open(netnsPath);
    try {
      const link = await r.getLink(ep.ifname);
      if (!link) return;
      if (ep.ipv4) await r.addRoute({ dst: 'default', index: link.index, family: 4, replace: true });
      if (ep.ipv6) await r.addRoute({ dst: 'default', index: link.index, family: 6, replace: true });
    } finally {
      r.close();
    }
  }
}
