// Docker's event stream (GET /events): every state change is published here and fanned out to watchers.
import { EventEmitter } from 'node:events';

export interface DockerEvent {
  Type: 'container' | 'network' | 'image' | 'volume' | 'daemon';
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: 'local';
  time: number;
  timeNano: number;
  // pre-1.22 fields the docker CLI still reads for containers
  status?: string;
  id?: string;
  from?: string;
}

export class Events {
  private readonly emitter = new EventEmitter();
  private readonly recent: DockerEvent[] = [];

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  publish(type: DockerEvent['Type'], action: string, id: string, attributes: Record<string, string> = {}): void {
    const nano = BigInt(Date.now()) * 1_000_000n + BigInt(Number(process.hrtime.bigint() % 1_000_000n));
    const ev: DockerEvent = {
      Type: type, Action: action, Actor: { ID: id, Attributes: attributes }, scope: 'local',
      time: Math.floor(Date.now() / 1000), timeNano: Number(nano),
    };
    if (type === 'container') Object.assign(ev, { status: action, id, from: attributes.image ?? '' });
    this.recent.push(ev);
    if (this.recent.length > 1000) this.recent.shift();
    this.emitter.emit('event', ev);
  }

  /** Events since a unix time (seconds, fractional allowed) from the in-memory backlog. */
  since(sec: number): DockerEvent[] {
    return this.recent.filter((e) => e.timeNano / 1e9 >= sec);
  }

  subscribe(fn: (e: DockerEvent) => void): () => void {
    this.emitter.on('event', fn);
    return () => this.emitter.off('event', fn);
  }
}
