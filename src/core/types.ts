// The persisted model. Field names follow Docker's API where a record is shown to users as-is.

export interface IpamConfig {
  Subnet: string;
  Gateway?: string;
  IPRange?: string;
  AuxiliaryAddresses?: Record<string, string>;
}

export interface NetworkRecord {
  id: string;
  name: string;
  driver: string; // 'bridge' | 'host' | 'null' | 'macvlan' | 'overlay' | a plugin's name
  scope: 'local' | 'swarm' | 'global';
  created: string;
  enableIPv6: boolean;
  ipam: { driver: string; options: Record<string, string>; config: IpamConfig[] };
  internal: boolean;
  attachable: boolean;
  options: Record<string, string>;
  labels: Record<string, string>;
  /** kernel bridge device for bridge networks */
  bridge?: string;
  /** the daemon's default `bridge` network (docker0 model: no DNS, links allowed) */
  isDefault?: boolean;
  /** last address handed out, per subnet, for round-robin allocation */
  lastAllocated?: Record<string, string>;
  /** subnets taken from the default pools (no --ip/--ip6 there: Docker allows them only in configured subnets) */
  autoSubnets?: string[];
  /** facts a driver keeps about its network (macvlan: whether it created the parent link) */
  driverData?: Record<string, string>;
  /** pools a remote IPAM plugin handed out, one per entry of ipam.config (same order); the addresses it gave for the gateway and aux addresses */
  ipamPools?: { poolId: string; subnet: string; reserved?: string[] }[];
}

export interface EndpointRecord {
  id: string;
  networkId: string;
  networkName: string;
  ifname: string; // eth0, eth1, ...
  hostVeth?: string;
  mac: string;
  ipv4?: string; // address only
  prefix4?: number;
  gateway4?: string;
  ipv6?: string;
  prefix6?: number;
  gateway6?: string;
  aliases: string[];
  /** addresses the user asked for (--ip/--ip6), kept so a restart gets the same ones */
  requestedIpv4?: string;
  requestedIpv6?: string;
  /** 'creating' until every kernel step is done: a record left 'creating' by a crash is rolled back at startup */
  phase: 'creating' | 'ready';
  /** facts a driver keeps about its endpoint (the namespace it was plugged into, a plugin's link name...) */
  driverData?: Record<string, string>;
}

export interface ContainerState {
  Status: 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';
  Running: boolean;
  Paused: boolean;
  Restarting: boolean;
  OOMKilled: boolean;
  Dead: boolean;
  Pid: number;
  ExitCode: number;
  Error: string;
  StartedAt: string;
  FinishedAt: string;
}

export interface ContainerConfig {
  Hostname: string;
  Domainname: string;
  User: string;
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  ExposedPorts?: Record<string, object>;
  Tty: boolean;
  OpenStdin: boolean;
  StdinOnce: boolean;
  Env: string[];
  Cmd: string[] | null;
  Image: string;
  Volumes: Record<string, object> | null;
  WorkingDir: string;
  Entrypoint: string[] | null;
  OnBuild: null;
  Labels: Record<string, string>;
  StopSignal?: string;
  StopTimeout?: number;
}

export interface PortBinding {
  HostIp: string;
  HostPort: string;
}

export interface HostConfig {
  NetworkMode: string;
  PortBindings: Record<string, PortBinding[] | null>;
  RestartPolicy: { Name: string; MaximumRetryCount: number };
  AutoRemove: boolean;
  Links: string[] | null;
  Dns: string[];
  DnsOptions: string[];
  DnsSearch: string[];
  ExtraHosts: string[] | null;
  PublishAllPorts: boolean;
  Privileged: boolean;
  Init?: boolean | null;
  [k: string]: unknown;
}

export interface ContainerRecord {
  id: string;
  name: string; // without the leading slash
  created: string;
  path: string;
  args: string[];
  imageId: string;
  config: ContainerConfig;
  hostConfig: HostConfig;
  /** 'bridge' | 'host' | 'none' | 'container:<id>' | a user-defined network's name */
  networkMode: string;
  /** endpoint settings asked for at create/connect time, per network name */
  networkRequests: Record<string, { aliases: string[]; ipv4?: string; ipv6?: string; mac?: string }>;
  state: ContainerState;
  restartCount: number;
  /** stopped through the API (stop/kill): restart policies leave it alone until it is started again */
  stoppedByUser?: boolean;
  /** bind-mounted network namespace of this container (bridge/none/user networks) */
  netnsPath?: string;
  /** host ports published while running (cleared when it stops) */
  published?: { proto: 'tcp' | 'udp' | 'sctp'; containerPort: number; hostIp: string; hostPort: number }[];
  /** attached endpoints by network name */
  endpoints: Record<string, EndpointRecord>;
  hostnamePath: string;
  hostsPath: string;
  resolvConfPath: string;
  logPath: string;
  stateDir: string;
}

/** Docker's container config as an image carries it (`config` of the image config JSON). */
export interface ImageRunConfig {
  Env: string[] | null;
  Cmd: string[] | null;
  Entrypoint: string[] | null;
  WorkingDir: string;
  Labels: Record<string, string> | null;
  User?: string;
  ExposedPorts?: Record<string, object> | null;
  Volumes?: Record<string, object> | null;
  StopSignal?: string;
  OnBuild?: string[] | null;
  [k: string]: unknown;
}

/** An image: its config JSON (the id is sha256 of those bytes) and its layers by diff ID, bottom first. */
export interface ImageRecord {
  id: string; // sha256:<hex>
  name: string; // first reference, for the store's name column
  created: string;
  size: number; // sum of the layers' unpacked sizes
  comment: string;
  config: ImageRunConfig;
  layers: string[];
  configJson: string;
  parent: string; // '' or the local parent image (builds, commits)
  lastTagTime?: string;
  /** removed with -f while a stopped container still used it: hidden, kept until no container uses it */
  deleted?: boolean;
  /** before layers (legacy data roots): the unpacked root filesystem; migrated at daemon start */
  rootfs?: string;
}
