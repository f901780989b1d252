// Registries: POST /auth (the docker CLI's login: the daemon checks the credentials with the registry).
import { route } from '../router.ts';
import { invalidParameter } from '../../util/errors.ts';
import type { AuthConfig } from '../../images/registry/service.ts';

route('POST', '/auth', async (d, { body }) => {
  const cfg = (await body()) as AuthConfig | null;
  if (!cfg || typeof cfg !== 'object') throw invalidParameter('invalid auth configuration: a JSON object is required');
  return d.registry.login(cfg);
});
