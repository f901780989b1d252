// A registry token server (the distribution "token" auth spec) for tests: it issues RS256 JWTs carrying the
// signing certificate in x5c, which docker-registry (auth: token, rootcertbundle = that certificate) checks.
//   token-server PORT KEY.pem CERT.pem LOG
// Anyone gets pull on public/*; alice:s3cret gets what she asks for; with offline_token=true a refresh token
// is handed out, which the OAuth POST (grant_type=refresh_token) accepts instead of the password.
// Every token request is appended to LOG as a JSON line (account, scopes), so tests can count them.
import { createSign, randomBytes, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';

const [port, keyFile, certFile, logFile] = process.argv.slice(2) as [string, string, string, string];
const key = fs.readFileSync(keyFile, 'utf8');
const certDer = new X509Certificate(fs.readFileSync(certFile)).raw.toString('base64');
const refreshTokens = new Set<string>();
const b64u = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

function jwt(sub: string, service: string, access: { type: string; name: string; actions: string[] }[]): string {
  const now = Math.floor(Date.now() / 1000);
  const head = b64u({ typ: 'JWT', alg: 'RS256', x5c: [certDer] });
  const body = b64u({ iss: 'test-issuer', sub, aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access });
  const sig = createSign('RSA-SHA256').update(`${head}.${body}`).sign(key).toString('base64url');
  return `${head}.${body}.${sig}`;
}

function grant(user: string, scopes: string[]) {
  return scopes.flatMap((s) => {
    const [type, name, actions] = s.split(':') as [string, string, string];
    if (type !== 'repository' || !name) return [];
    const want = (actions ?? '').split(',').filter(Boolean);
    const ok = user === 'alice' ? want : name.startsWith('public/') ? want.filter((a) => a === 'pull') : [];
    return ok.length ? [{ type, name, actions: ok }] : [];
  });
}

http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  let body = '';
  req.on('data', (d: Buffer) => (body += d));
  req.on('end', () => {
    const fail = (code: number, details: string) => {
      res.writeHead(code, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ details }));
    };
    let user = '';
    let scopes: string[];
    let service: string;
    let offline = false;
    if (req.method === 'POST') {
      const form = new URLSearchParams(body);
      if (form.get('grant_type') !== 'refresh_token' || !refreshTokens.has(form.get('refresh_token') ?? '')) return fail(401, 'invalid refresh token');
      user = 'alice';
      scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
      service = form.get('service') ?? '';
    } else {
      const auth = req.headers.authorization;
      if (auth) {
        const [u, p] = Buffer.from(auth.replace(/^Basic /, ''), 'base64').toString().split(':');
        if (u !== 'alice' || p !== 's3cret') return fail(401, 'incorrect username or password');
        user = 'alice';
      }
      scopes = url.searchParams.getAll('scope');
      service = url.searchParams.get('service') ?? '';
      offline = url.searchParams.get('offline_token') === 'true';
    }
    fs.appendFileSync(logFile, `${JSON.stringify({ method: req.method, user, scopes })}\n`);
    const token = jwt(user, service, grant(user, scopes));
    const out: Record<string, unknown> = { token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() };
    if (offline && user) {
      const r = randomBytes(16).toString('hex');
      refreshTokens.add(r);
      out.refresh_token = r;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(out));
  });
}).listen(Number(port), '198.51.100.2');
