// Docker-shaped JSON for containers, images and networks (keys and casing as the Engine API has them).
import { OPT_OVS_BRIDGE, ovsBridgeOf } from '../drivers/ovs.ts';
import { createHash } from 'node:crypto';
import type { ContainerRecord, EndpointRecord, ImageRecord, NetworkRecord } from '../core/types.ts';
import { ZERO_TIME } from '../core/names.ts';
import { parseLinks, publishedView } from '../core/publish.ts';
import { mountsView } from '../volumes/specs.ts';

/** go-units HumanDuration (whole units, truncated), as Docker's status texts use it. */
export function humanDuration(ms: number): string {
  const s = Math.trunc(ms / 1000);
  if (s < 1) return 'Less than a second';
  if (s === 1) return '1 second';
  if (s < 60) return `${s} seconds`;
  const m = Math.trunc(ms / 60_000);
  if (m === 1) return 'About a minute';
  if (m < 60) return `${m} minutes`;
  const h = Math.trunc(ms / 3_600_000 + 0.5);
  if (h === 1) return 'About an hour';
  if (h < 48) return `${h} hours`;
  if (h < 24 * 14) return `${Math.trunc(h / 24)} days`;
  if (h < 24 * 60) return `${Math.trunc(h / 24 / 7)} weeks`;
  if (h < 24 * 730) return `${Math.trunc(h / 24 / 30)} months`;
  return `${Math.trunc(ms / 3_600_000 / 24 / 365)} years`;
}

export function statusText(c: ContainerRecord): string {
  const st = c.state;
  if (st.Running) {
    const up = `Up ${humanDuration(Date.now() - Date.parse(st.StartedAt))}`;
    return st.Paused ? `${up} (Paused)` : up;
  }
  // Docker counts a container waiting for its restart as running, and says so
  if (st.Restarting) return `Restarting (${st.ExitCode}) ${humanDuration(Date.now() - Date.parse(st.FinishedAt))} ago`;
  if (st.Status === 'exited' || (st.FinishedAt !== ZERO_TIME && st.StartedAt !== ZERO_TIME)) {
    return `Exited (${st.ExitCode}) ${humanDuration(Date.now() - Date.parse(st.FinishedAt))} ago`;
  }
  return 'Created';
}

function endpointSettings(c: ContainerRecord, netName: string, net: NetworkRecord | undefined, ep: EndpointRecord | undefined) {
  const req = c.networkRequests[netName];
  const ipam = req && (req.ipv4 || req.ipv6) ? { IPv4Address: req.ipv4 ?? '', IPv6Address: req.ipv6 ?? '' } : null;
  return {
    IPAMConfig: ipam,
    Links: null,
    Aliases: req?.aliases.length ? req.aliases : null,
    MacAddress: ep?.mac ?? '',
    DriverOpts: null,
    GwPriority: 0,
    NetworkID: net?.id ?? '',
    EndpointID: ep?.id ?? '',
    Gateway: ep?.gateway4 ?? '',
    IPAddress: ep?.ipv4 ?? '',
    IPPrefixLen: ep?.prefix4 ?? 0,
    IPv6Gateway: ep?.gateway6 ?? '',
    GlobalIPv6Address: ep?.ipv6 ?? '',
    GlobalIPv6PrefixLen: ep?.prefix6 ?? 0,
    // Docker's buildEndpointDNSNames: name, aliases, short id, hostname (deduplicated)
    DNSNames: net && !net.isDefault && net.driver === 'bridge' ? [...new Set([c.name, ...(req?.aliases ?? []), c.id.slice(0, 12), c.config.Hostname].filter(Boolean))] : null,
  };
}

export function containerNetworks(c: ContainerRecord, netByName: (n: string) => NetworkRecord | undefined): Record<string, ReturnType<typeof endpointSettings>> {
  const out: Record<string, ReturnType<typeof endpointSettings>> = {};
  const mode = c.networkMode;
  if (mode === 'host' || mode === 'none') {
    out[mode] = endpointSettings(c, mode, netByName(mode), undefined);
    return out;
  }
  if (mode.startsWith('container:')) return out;
  for (const name of Object.keys(c.networkRequests)) out[name] = endpointSettings(c, name, netByName(name), c.endpoints[name]);
  return out;
}

export function portsMap(c: ContainerRecord): Record<string, { HostIp: string; HostPort: string }[] | null> {
  const out: Record<string, { HostIp: string; HostPort: string }[] | null> = {};
  // Docker fills NetworkSettings.Ports when the network is set up and empties it at exit (releaseNetwork)
  if (!c.state.Running) return out;
  for (const k of Object.keys(c.config.ExposedPorts ?? {})) out[k] = null;
  for (const [k, v] of Object.entries(publishedView(c.published ?? []))) out[k] = v;
  return out;
}

export function inspectContainer(c: ContainerRecord, img: ImageRecord | undefined, netByName: (n: string) => NetworkRecord | undefined) {
  const networks = containerNetworks(c, netByName);
  const primary = c.endpoints['bridge'] && netByName('bridge')?.isDefault ? c.endpoints['bridge'] : undefined;
  return {
    Id: c.id,
    Created: c.created,
    Path: c.path,
    Args: c.args,
    State: {
      Status: c.state.Status,
      Running: c.state.Running || c.state.Restarting,
      Paused: c.state.Paused,
      Restarting: c.state.Restarting,
      OOMKilled: c.state.OOMKilled,
      Dead: c.state.Dead,
      Pid: c.state.Pid,
      ExitCode: c.state.ExitCode,
      Error: c.state.Error,
      StartedAt: c.state.StartedAt,
      FinishedAt: c.state.FinishedAt,
    },
    Image: c.imageId,
    ResolvConfPath: c.resolvConfPath,
    HostnamePath: c.hostnamePath,
    HostsPath: c.hostsPath,
    LogPath: c.logPath,
    Name: `/${c.name}`,
    RestartCount: c.restartCount,
    Driver: 'overlay2',
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    ExecIDs: null,
    HostConfig: {
      Binds: null,
      ContainerIDFile: '',
      LogConfig: { Type: 'json-file', Config: (c.hostConfig.LogConfig as { Config?: Record<string, string> } | undefined)?.Config ?? {} },
      VolumeDriver: '',
      VolumesFrom: null,
      CapAdd: null,
      CapDrop: null,
      CgroupnsMode: 'private',
      GroupAdd: null,
      IpcMode: 'private',
      Cgroup: '',
      OomScoreAdj: 0,
      PidMode: '',
      ReadonlyRootfs: false,
      SecurityOpt: null,
      UTSMode: '',
      UsernsMode: '',
      ShmSize: 67108864,
      Runtime: 'runc',
      Isolation: '',
      ...c.hostConfig,
      Dns: c.hostConfig.Dns,
      DnsOptions: c.hostConfig.DnsOptions,
      DnsSearch: c.hostConfig.DnsSearch,
      ExtraHosts: c.hostConfig.ExtraHosts,
      PortBindings: c.hostConfig.PortBindings ?? {},
      NetworkMode: c.hostConfig.NetworkMode,
      RestartPolicy: c.hostConfig.RestartPolicy,
      AutoRemove: c.hostConfig.AutoRemove,
      // Docker shows links as CHILD:PARENT/ALIAS, both as container names ("/db:/web/db")
      Links: c.hostConfig.Links ? parseLinks(c.hostConfig.Links).map((l) => `/${l.name}:/${c.name}/${l.alias}`) : null,
    },
    GraphDriver: { Data: { LowerDir: img?.rootfs ?? '', UpperDir: `${c.stateDir}/upper`, WorkDir: `${c.stateDir}/work`, MergedDir: `${c.stateDir}/rootfs` }, Name: 'overlay2' },
    Mounts: mountsView(c.mounts),
    Config: c.config,
    NetworkSettings: {
      Bridge: '',
      SandboxID: c.netnsPath ? c.id : '',
      SandboxKey: c.netnsPath ?? '',
      Ports: portsMap(c),
      HairpinMode: false,
      LinkLocalIPv6Address: '',
      LinkLocalIPv6PrefixLen: 0,
      SecondaryIPAddresses: null,
      SecondaryIPv6Addresses: null,
      EndpointID: primary?.id ?? '',
      Gateway: primary?.gateway4 ?? '',
      GlobalIPv6Address: primary?.ipv6 ?? '',
      GlobalIPv6PrefixLen: primary?.prefix6 ?? 0,
      IPAddress: primary?.ipv4 ?? '',
      IPPrefixLen: primary?.prefix4 ?? 0,
      IPv6Gateway: primary?.gateway6 ?? '',
      MacAddress: primary?.mac ?? '',
      Networks: networks,
    },
  };
}

export function listContainer(c: ContainerRecord, img: ImageRecord | undefined, netByName: (n: string) => NetworkRecord | undefined) {
  const ports: { IP?: string; PrivatePort: number; PublicPort?: number; Type: string }[] = [];
  for (const [k, v] of Object.entries(portsMap(c))) {
    const [p, proto] = k.split('/');
    if (!v) ports.push({ PrivatePort: Number(p), Type: proto ?? 'tcp' });
    else for (const b of v) ports.push({ IP: b.HostIp || '0.0.0.0', PrivatePort: Number(p), PublicPort: Number(b.HostPort), Type: proto ?? 'tcp' });
  }
  return {
    Id: c.id,
    Names: [`/${c.name}`],
    Image: c.config.Image,
    ImageID: img?.id ?? c.imageId,
    // moby container/view.go: arguments with a space in single quotes
    Command: c.args.length ? `${c.path} ${c.args.map((a) => (a.includes(' ') ? `'${a}'` : a)).join(' ')}` : c.path,
    Created: Math.floor(Date.parse(c.created) / 1000),
    Ports: ports,
    Labels: c.config.Labels ?? {},
    State: c.state.Status,
    Status: statusText(c),
    HostConfig: { NetworkMode: c.hostConfig.NetworkMode },
    NetworkSettings: { Networks: containerNetworks(c, netByName) },
    Mounts: mountsView(c.mounts),
  };
}

export function inspectNetwork(n: NetworkRecord, members: ContainerRecord[], verbose = false) {
  const containers: Record<string, { Name: string; EndpointID: string; MacAddress: string; IPv4Address: string; IPv6Address: string; OvsPort?: string }> = {};
  // Go encodes maps with their keys sorted: Containers by id, Options and Labels by key.
  for (const c of [...members].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    const ep = c.endpoints[n.name];
    if (!ep) {
      // host and none: Docker lists the containers in that mode, with an endpoint that has no address
      if ((n.driver === 'host' || n.driver === 'null') && c.networkMode === n.name && c.state.Running) {
        const id = createHash('sha256').update(`${n.id}/${c.id}`).digest('hex');
        containers[c.id] = { Name: c.name, EndpointID: id, MacAddress: '', IPv4Address: '', IPv6Address: '' };
      }
      continue;
    }
    containers[c.id] = {
      Name: c.name,
      EndpointID: ep.id,
      MacAddress: ep.mac,
      IPv4Address: ep.ipv4 ? `${ep.ipv4}/${ep.prefix4}` : '',
      IPv6Address: ep.ipv6 ? `${ep.ipv6}/${ep.prefix6}` : '',
      // loom's: the endpoint's port on the network's OVS bridge (Options' loom.ovs.bridge)
      ...(n.driver === 'openvswitch' && ep.hostVeth ? { OvsPort: ep.hostVeth } : {}),
    };
  }
  void verbose;
  return {
    Name: n.name,
    Id: n.id,
    Created: n.created,
    Scope: n.scope,
    Driver: n.driver,
    // no EnableIPv4: the keys are those of Docker's reference output (../shared/reference/peer-output).
    // IPAM Options: null for the networks the daemon makes itself (the default bridge), as dockerd.
    EnableIPv6: n.enableIPv6,
    IPAM: { Driver: n.ipam.driver, Options: n.driver !== 'host' && n.driver !== 'null' && !n.isDefault ? sortedKeys(n.ipam.options) : null, Config: n.ipam.config.length || (n.driver !== 'host' && n.driver !== 'null') ? n.ipam.config : null },
    Internal: n.internal,
    Attachable: n.attachable,
    Ingress: false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: containers,
    // a global openvswitch network's record comes from the cluster store without the bridge's name
    Options: sortedKeys(n.driver === 'openvswitch' && !n.options[OPT_OVS_BRIDGE] ? { ...n.options, [OPT_OVS_BRIDGE]: ovsBridgeOf(n) } : n.options),
    Labels: sortedKeys(n.labels),
  };
}

function sortedKeys(m: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(m ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
