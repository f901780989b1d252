// Remote IPAM (libnetwork's ipams/remote): a plugin implementing "IpamDriver" hands out a network's
// pools and its endpoints' addresses. `network create --ipam-driver NAME` asks it for the default address
// spaces, then one pool per configured subnet (or one of its choosing per family when none is given),
// the gateway (the pool's com.docker.network.gateway, or an address requested with RequestAddressType
// com.docker.network.gateway) and the aux addresses; each endpoint asks for its address; removals
// release them. Answers carry their error in "Error" (not "Err" as network drivers do).
import type { EndpointRecord, IpamConfig, NetworkRecord } from '../core/types.ts';
import { LoomError } from '../util/errors.ts';
import type { PluginClient } from './client.ts';
import net from 'node:net';

export const GATEWAY_LABEL = 'com.docker.network.gateway';
const MAC_LABEL = 'com.docker.network.endpoint.macaddress';

interface Pool { poolId: string; subnet: string; reserved?: string[] }

/** "ip/prefix" → its parts; throws naming the plugin's bad value. */
function splitCidr(s: string, what: string, plugin: string): { ip: string; prefix: number } {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(s ?? '');
  if (!m || !net.isIP(m[1]!)) throw new LoomError(500, `invalid ${what} ${JSON.stringify(s)} from IPAM plugin ${plugin}`);
  return { ip: m[1]!, prefix: Number(m[2]) };
}

export class RemoteIpam {
  readonly name: string;
  private readonly client: PluginClient;
  private caps: { RequiresMACAddress?: boolean } | null = null;

  constructor(name: string, client: PluginClient) {
    this.name = name;
    this.client = client;
  }

  /** IpamDriver.<method>; errors as Docker words them ("remote: ..." / "IpamDriver.X: ..."), naming the plugin. */
  async call<T extends object>(method: string, args?: unknown): Promise<T> {
    let res: T & { Error?: string };
    try {
      res = await this.client.call<T & { Error?: string }>(`IpamDriver.${method}`, args);
    } catch (e) {
      throw new LoomError(500, `${(e as Error).message} (IPAM plugin ${this.name})`);
    }
    if (res && typeof res.Error === 'string' && res.Error) throw new LoomError(500, `remote: ${res.Error} (IPAM plugin ${this.name})`);
    return res ?? ({} as T);
  }

  private async capabilities(): Promise<{ RequiresMACAddress?: boolean }> {
    // Docker registers a plugin without GetCapabilities with none
    if (!this.caps) this.caps = await this.call<{ RequiresMACAddress?: boolean }>('GetCapabilities').catch(() => ({}));
    return this.caps;
  }

  /**
   * The IPAM side of a new network: pools, gateways and aux addresses from the plugin. Returns the
   * config shown by inspect (Docker's: Subnet, IPRange, Gateway), the pools to release later and the
   * subnets the plugin chose itself. On failure everything requested so far is released.
   */
  async allocateNetwork(configs: IpamConfig[], ipv6: boolean, options: Record<string, string>, scope: 'local' | 'swarm' | 'global'):
  Promise<{ config: IpamConfig[]; pools: Pool[]; auto: string[] }> {
    await this.capabilities();
    const spaces = await this.call<{ LocalDefaultAddressSpace?: string; GlobalDefaultAddressSpace?: string }>('GetDefaultAddressSpaces');
    const space = (scope === 'global' ? spaces.GlobalDefaultAddressSpace : spaces.LocalDefaultAddressSpace) ?? '';
    const config: IpamConfig[] = [];
    const pools: Pool[] = [];
    const auto: string[] = [];
    const fam = (c: IpamConfig) => (c.Subnet?.includes(':') ? 6 : 4);
    const wanted: { c: Partial<IpamConfig>; v6: boolean }[] = [];
    for (const v6 of ipv6 ? [false, true] : [false]) {
      const mine = configs.filter((c) => (c.Subnet ? fam(c) === (v6 ? 6 : 4) : !v6));
      for (const c of mine.length ? mine : [{}]) wanted.push({ c, v6 });
    }
    try {
      for (const { c, v6 } of wanted) {
        const p = await this.call<{ PoolID?: string; Pool?: string; Data?: Record<string, string> | null }>('RequestPool', {
          AddressSpace: space, Pool: c.Subnet ?? '', SubPool: c.IPRange ?? '', Options: options, V6: v6,
        });
        if (!p.PoolID || !p.Pool) throw new LoomError(500, `IpamDriver.RequestPool: no pool in the answer (IPAM plugin ${this.name})`);
        splitCidr(p.Pool, 'pool', this.name);
        const pool: Pool = { poolId: p.PoolID, subnet: p.Pool, reserved: [] };
        pools.push(pool);
        if (!c.Subnet) auto.push(p.Pool);
        let gateway: string | undefined;
        const fromPool = p.Data?.[GATEWAY_LABEL];
        if (!c.Gateway && fromPool) gateway = splitCidr(fromPool, 'gateway', this.name).ip;
        else {
          const gw = (await this.requestAddress(p.PoolID, c.Gateway ?? '', { RequestAddressType: GATEWAY_LABEL })).ip;
          pool.reserved!.push(gw);
          gateway = gw;
        }
        const aux: Record<string, string> = {};
        for (const [k, v] of Object.entries(c.AuxiliaryAddresses ?? {})) {
          const got = (await this.requestAddress(p.PoolID, v, {})).ip;
          aux[k] = got;
          pool.reserved!.push(got);
        }
        config.push({
          Subnet: c.Subnet ?? p.Pool,
          ...(c.IPRange ? { IPRange: c.IPRange } : {}),
          ...(gateway ? { Gateway: gateway } : {}),
          ...(Object.keys(aux).length ? { AuxiliaryAddresses: aux } : {}),
        });
      }
    } catch (e) {
      await this.releaseNetwork(pools).catch(() => {});
      throw e;
    }
    return { config, pools, auto };
  }

  /** Gateway and aux addresses, then the pools (errors of each step after the first are only reported). */
  async releaseNetwork(pools: Pool[]): Promise<void> {
    let first: unknown;
    for (const p of pools) {
      for (const a of p.reserved ?? []) await this.releaseAddress(p.poolId, a).catch((e) => { first ??= e; });
      await this.call('ReleasePool', { PoolID: p.poolId }).catch((e) => { first ??= e; });
    }
    if (first) throw first;
  }

  async requestAddress(poolId: string, address: string, options: Record<string, string>): Promise<{ ip: string; prefix: number }> {
    const r = await this.call<{ Address?: string }>('RequestAddress', { PoolID: poolId, Address: address, Options: options });
    if (!r.Address) throw new LoomError(500, `no IP address returned by IPAM plugin ${this.name}`);
    return splitCidr(r.Address, 'address', this.name);
  }

  async releaseAddress(poolId: string, address: string): Promise<void> {
    await this.call('ReleaseAddress', { PoolID: poolId, Address: address });
  }

  /**
   * An endpoint's addresses: per family, from the pool holding the wanted one (--ip/--ip6) or the
   * network's first pool of that family. Fills ep.ipv4/prefix4/gateway4 (and v6). On failure what was
   * given is released again.
   */
  async allocateEndpoint(net: NetworkRecord, ep: EndpointRecord): Promise<void> {
    const pools = net.ipamPools ?? [];
    const caps = await this.capabilities();
    const got: { poolId: string; ip: string }[] = [];
    try {
      for (const family of [4, 6] as const) {
        const idx = net.ipam.config.map((c, i) => ({ c, i })).filter(({ c }) => (c.Subnet.includes(':') ? 6 : 4) === family);
        if (!idx.length) continue;
        const want = family === 4 ? ep.requestedIpv4 : ep.requestedIpv6;
        const { c, i } = idx[0]!;
        const pool = pools[i];
        if (!pool) continue;
        const opts: Record<string, string> = caps.RequiresMACAddress && ep.mac ? { [MAC_LABEL]: ep.mac } : {};
        const a = await this.requestAddress(pool.poolId, want ?? '', opts);
        got.push({ poolId: pool.poolId, ip: a.ip });
        if (family === 4) { ep.ipv4 = a.ip; ep.prefix4 = a.prefix; ep.gateway4 = c.Gateway; }
        else { ep.ipv6 = a.ip; ep.prefix6 = a.prefix; ep.gateway6 = c.Gateway; }
      }
    } catch (e) {
      for (const g of got) await this.releaseAddress(g.poolId, g.ip).catch(() => {});
      ep.ipv4 = ep.ipv6 = undefined;
      throw e;
    }
  }

  /** Gives an endpoint's addresses back (idempotent: they are cleared from the record). */
  async releaseEndpoint(net: NetworkRecord, ep: EndpointRecord): Promise<void> {
    const pools = net.ipamPools ?? [];
    let first: unknown;
    for (const family of [4, 6] as const) {
      const ip = family === 4 ? ep.ipv4 : ep.ipv6;
      if (!ip) continue;
      const i = net.ipam.config.findIndex((c) => (c.Subnet.includes(':') ? 6 : 4) === family);
      const pool = pools[i];
      if (pool) await this.releaseAddress(pool.poolId, ip).catch((e) => { first ??= e; });
      if (family === 4) ep.ipv4 = undefined;
      else ep.ipv6 = undefined;
    }
    if (first) throw first;
  }
}
