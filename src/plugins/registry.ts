// Activated plugins by name (Docker's pkg/plugins storage): a plugin is found (discovery.ts), activated
// once with POST /Plugin.Activate → {"Implements": ["NetworkDriver", "IpamDriver", ...]}, and its client
// kept. A failed activation is not kept, so a plugin started later is found then.
import { PluginClient, type ClientOptions } from './client.ts';
import { findPlugin } from './discovery.ts';
import { LoomError, notFound } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';

export type PluginKind = 'NetworkDriver' | 'IpamDriver';

export interface ActivePlugin {
  name: string;
  client: PluginClient;
  implements: string[];
}

export class Plugins {
  private readonly dirs: string[];
  private readonly log: Logger;
  private readonly clientOpts: ClientOptions;
  private readonly active = new Map<string, Promise<ActivePlugin>>();

  constructor(dirs: string[], log: Logger, clientOpts: ClientOptions = {}) {
    this.dirs = dirs;
    this.log = log;
    this.clientOpts = clientOpts;
  }

  /**
   * The plugin `name` implementing `kind`. Docker's errors: `plugin "x" not found` (404) when no
   * socket or spec has that name; a plugin that does not implement `kind` is refused naming both.
   */
  async get(name: string, kind: PluginKind): Promise<ActivePlugin> {
    let p = this.active.get(name);
    if (!p) {
      p = this.activate(name);
      this.active.set(name, p);
      p.catch(() => this.active.delete(name));
    }
    const got = await p;
    if (!got.implements.includes(kind)) {
      throw new LoomError(400, `Plugin does not implement the requested driver: plugin="${name}", requested implementation="${kind}"`);
    }
    return got;
  }

  private async activate(name: string): Promise<ActivePlugin> {
    let addr;
    try {
      addr = findPlugin(name, this.dirs);
    } catch (e) {
      throw new LoomError(500, `error looking up plugin ${name}: ${(e as Error).message}`);
    }
    if (!addr) throw notFound(`plugin "${name}" not found`);
    const client = new PluginClient(addr, this.clientOpts);
    const m = await client.call<{ Implements?: string[] | null }>('Plugin.Activate').catch((e: Error) => {
      throw new LoomError(500, `error activating plugin ${name}: ${e.message}`);
    });
    const impl = Array.isArray(m.Implements) ? m.Implements.filter((x) => typeof x === 'string') : [];
    this.log.info({ plugin: name, addr: addr.addr, implements: impl }, 'plugin activated');
    return { name, client, implements: impl };
  }

  /** Forget an activation (a plugin that went away is looked up again next time). */
  forget(name: string): void {
    this.active.delete(name);
  }
}
