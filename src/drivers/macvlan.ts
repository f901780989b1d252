// The macvlan driver (libnetwork's drivers/macvlan): containers as MAC-addressed ports of a host
// interface (-o parent=IFACE), on the parent's own L2 segment, with addresses from IPAM in the subnet of
// that segment and the segment's router as gateway. Modes as the kernel's: bridge (Docker's default:
// ports reach each other inside the parent), private, vepa, passthru (one port owns the parent). The host
// itself cannot reach its own macvlan ports through the parent: the kernel does not switch between a
// parent and its ports (a known property, the same under Docker).
import { macvlanData, MACVLAN_MODES, type LinkData } from '../kernel/rtnl.ts';
import type { NetworkRecord } from '../core/types.ts';
import { invalidParameter } from '../util/errors.ts';
import { PARENT_OPT, parentConflict, UnderlayDriver, type UnderlayConfig } from './underlay.ts';

export const MACVLAN_MODE_OPT = 'macvlan_mode';
type Mode = keyof typeof MACVLAN_MODES;

/** Docker's parseNetworkOptions of the macvlan driver: mode (default bridge), parent not `lo`. */
export function parseMacvlanOptions(options: Record<string, string>, internal: boolean): UnderlayConfig {
  const mode = options[MACVLAN_MODE_OPT] || 'bridge';
  if (!(mode in MACVLAN_MODES)) {
    throw invalidParameter(`requested macvlan mode '${mode}' is not valid, 'bridge' mode is the macvlan driver default`);
  }
  const parent = options[PARENT_OPT] ?? '';
  if (parent === 'lo') throw invalidParameter('loopback interface is not a valid macvlan parent link');
  return { parent, mode, internal: internal || parent === '' };
}

export class MacvlanDriver extends UnderlayDriver {
  readonly type = 'macvlan' as const;
  protected readonly dummyPrefix = 'dm-';
  protected readonly ownMac = true;

  parseOptions(options: Record<string, string>, internal: boolean): UnderlayConfig {
    return parseMacvlanOptions(options, internal);
  }

  /** Several macvlan networks may share a parent (their subnets differ: IPAM refuses overlaps), unless passthru. */
  protected checkShared(cfg: UnderlayConfig, _net: NetworkRecord, sameParent: NetworkRecord[]): void {
    const parent = cfg.parent || this.dummyPrefix;
    for (const o of sameParent) {
      if (cfg.mode === 'passthru') throw parentConflict(`cannot use mode passthru, macvlan network ${o.id} is already using parent interface ${parent}`);
      if ((o.options[MACVLAN_MODE_OPT] || 'bridge') === 'passthru') throw parentConflict(`macvlan network ${o.id} is already using parent interface ${parent} in mode passthru`);
    }
  }

  protected linkData(cfg: UnderlayConfig): LinkData[] {
    return macvlanData(cfg.mode as Mode);
  }
}
