// loom's IPAM for dockerd (`docker network create -d loom --ipam-driver loom`): the IpamDriver half of the
// legacy plugin protocol. Pools are loom subnets (PoolID `loom/<subnet>`); addresses come from loom's own
// IPAM on the loom network with that subnet, so dockerd's containers and loom's never collide — also on a
// loom network dockerd joins (`-o loom.name=NET --ipam-opt loom.name=NET`). An address handed out is
// reserved under a placeholder until dockerd's CreateEndpoint takes it over (server.ts).
import type { Daemon } from '../daemon.ts';
import type { NetworkRecord } from '../core/types.ts';
import { cidrString, firstHost, nextFreePool, overlaps, parseCidrStrict } from '../ipam/ipam.ts';
import { invalidParameter, LoomError, notFound } from '../util/errors.ts';

const GATEWAY = 'com.docker.network.gateway';
export const PLACEHOLDER = 'dockerd-ipam:';

export class PluginIpam {
  private readonly d: Daemon;

  constructor(d: Daemon) {
    this.d = d;
  }

  readonly handlers: Record<string, (b: any) => unknown> = {
    'IpamDriver.GetCapabilities': () => ({ RequiresMACAddress: false, RequiresRequestReplay: false }),
    'IpamDriver.GetDefaultAddressSpaces': () => ({ LocalDefaultAddressSpace: 'loom-local', GlobalDefaultAddressSpace: 'loom-global' }),
    'IpamDriver.RequestPool': (b) => this.requestPool(b),
    'IpamDriver.ReleasePool': () => ({}),
    'IpamDriver.RequestAddress': (b) => this.requestAddress(b),
    'IpamDriver.ReleaseAddress': (b) => this.releaseAddress(b),
  };

  private requestPool(b: any): unknown {
    if (b.V6) throw invalidParameter('loom IPAM for dockerd: IPv6 pools are not supported yet');
    const name = b.Options?.['loom.name'];
    if (b.SubPool) throw invalidParameter(`loom IPAM for dockerd: --ip-range (${b.SubPool}) is not supported`);
    if (name) {
      const n = this.d.networks.find(name);
      if (!n) throw notFound(`network ${name} not found`);
      const sub = n.ipam.config.find((c) => !c.Subnet.includes(':'))?.Subnet;
      if (!sub) throw invalidParameter(`network ${name} has no IPv4 subnet`);
      if (b.Pool && b.Pool !== sub) throw invalidParameter(`--subnet ${b.Pool} is not network ${name}'s subnet ${sub}`);
      // without it dockerd checks the pool against the host's routes, finds loom's bridge and asks again forever
      if (!b.Pool) throw invalidParameter(`give network ${name}'s subnet too: --subnet ${sub}`);
      return { PoolID: `loom/${sub}`, Pool: sub, Data: {} };
    }
    const used = this.d.networks.list().flatMap((n) => n.ipam.config.map((c) => parseCidrStrict(c.Subnet))).filter((c) => c !== null);
    if (b.Pool) {
      const c = parseCidrStrict(b.Pool);
      if (!c) throw invalidParameter(`invalid pool ${b.Pool}`);
      if (used.some((u) => overlaps(u, c))) throw new LoomError(403, 'invalid pool request: Pool overlaps with other one on this address space');
      return { PoolID: `loom/${cidrString(c)}`, Pool: cidrString(c), Data: {} };
    }
    const pick = nextFreePool(this.d.opts.pools, used);
    if (!pick) throw new LoomError(403, 'could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network');
    return { PoolID: `loom/${cidrString(pick)}`, Pool: cidrString(pick), Data: {} };
  }

  private networkWith(subnet: string): NetworkRecord | undefined {
    return this.d.networks.list().find((n) => n.ipam.config.some((c) => c.Subnet === subnet));
  }

  private requestAddress(b: any): unknown {
    const subnet = String(b.PoolID ?? '').replace(/^loom\//, '');
    const c = parseCidrStrict(subnet);
    if (!c) throw invalidParameter(`unknown pool ${b.PoolID}`);
    const net = this.networkWith(subnet);
    const want = b.Address ? String(b.Address) : undefined;
    if (b.Options?.RequestAddressType === GATEWAY) {
      const gw = net?.ipam.config.find((x) => x.Subnet === subnet)?.Gateway ?? want ?? firstHost(c);
      return { Address: `${gw}/${c.prefix}`, Data: {} };
    }
    if (!net) throw notFound(`loom has no network with subnet ${subnet}`);
    const nets = this.d.networks;
    const ep = this.d.store.tx(() => {
      const ep = nets.allocateEndpoint(nets.get(net.id), 'dockerd-ipam', 'eth0', { ipv4: want });
      this.d.store.setMeta(`${PLACEHOLDER}${net.id}/${ep.ipv4}`, ep.id);
      return ep;
    });
    return { Address: `${ep.ipv4}/${c.prefix}`, Data: {} };
  }

  private releaseAddress(b: any): unknown {
    const subnet = String(b.PoolID ?? '').replace(/^loom\//, '');
    const net = this.networkWith(subnet);
    if (net && b.Address) this.releasePlaceholder(net.id, String(b.Address).split('/')[0]!);
    return {};
  }

  /** Frees an address handed out but not (or no longer) held by an endpoint; inside the caller's transaction when there is one. */
  releasePlaceholder(netId: string, ip: string): void {
    const key = `${PLACEHOLDER}${netId}/${ip}`;
    const owner = this.d.store.getMeta(key);
    if (!owner) return;
    this.d.store.releaseOwner(owner);
    this.d.store.deleteMeta(key);
  }
}
