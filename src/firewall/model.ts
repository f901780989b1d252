// What the firewall is told: plain data, no driver objects. The controller derives it from its records;
// the firewall turns it into nftables text (ruleset.ts) and applies it (firewall.ts).

export type FwProto = 'tcp' | 'udp' | 'sctp';

export interface FwNetwork {
  id: string;
  /** the Linux bridge device; every rule of the network is keyed on it */
  bridge: string;
  subnets4: string[];
  subnets6: string[];
  /**
   * The network's gateway addresses (the bridge's own): containers of other networks may not reach them,
   * as they may not reach the other network's containers. Optional: no gateway, no rule.
   */
  gateways4?: string[];
  gateways6?: string[];
  /** masquerade traffic leaving the network (com.docker.network.bridge.enable_ip_masquerade) */
  masquerade: boolean;
  /** inter-container communication on the bridge (com.docker.network.bridge.enable_icc) */
  icc: boolean;
  /** no traffic in or out of the bridge, only between its own containers */
  internal: boolean;
  /**
   * com.docker.network.bridge.host_binding_ipv4 (default 0.0.0.0). The controller already applies it as
   * the host address of ports published without one, so the rules do not need it; it is kept for views.
   */
  hostBindingIpv4?: string;
}

/** A published port, or a range of them, as one DNAT element. */
export interface FwPort {
  proto: FwProto;
  /** '' = every local address of the family */
  hostIp: string;
  hostPort: number;
  hostPortEnd: number;
  containerIp: string;
  /**
   * Either containerPortEnd == containerPort (every host port goes to that one port), or the container
   * range has the host range's length; a range that shifts ports (8000-8009:9000-9009) is expanded into
   * one element per port, since nftables' DNAT keeps a port only when it lies inside the target range.
   */
  containerPort: number;
  containerPortEnd: number;
  bridge: string;
  family: 4 | 6;
}

/** A --link exception to icc=false: `fromIp` may open connections to `toIp:port`, and gets the replies. */
export interface FwLink {
  bridge: string;
  fromIp: string;
  toIp: string;
  proto: FwProto;
  port: number;
}

export interface FwState {
  networks: FwNetwork[];
  ports: FwPort[];
  links: FwLink[];
}

/** One transaction's worth of changes. Networks are removed by id. */
export interface FwChange {
  addNetworks?: FwNetwork[];
  removeNetworks?: (FwNetwork | { id: string } | string)[];
  addPorts?: FwPort[];
  removePorts?: FwPort[];
  addLinks?: FwLink[];
  removeLinks?: FwLink[];
}
