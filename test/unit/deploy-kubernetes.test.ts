import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { parseAllDocuments } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.ts';

const deployDir = fileURLToPath(new URL('../../deploy/', import.meta.url));
const kubernetesDir = join(deployDir, 'kubernetes');

type Doc = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> }; [key: string]: any };

/** A validator from kubernetes-models for every kind we ship; a new kind fails until it is added here. */
const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  'apps/v1 Deployment': Deployment,
  'v1 Service': Service,
  'v1 ConfigMap': ConfigMap,
  'v1 Secret': Secret,
  'networking.k8s.io/v1 NetworkPolicy': NetworkPolicy,
  'networking.k8s.io/v1 Ingress': Ingress,
  'monitoring.coreos.com/v1 ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1 PrometheusRule': PrometheusRule,
};

function validate(doc: Doc, where: string): void {
  const Model = MODELS[`${doc.apiVersion} ${doc.kind}`];
  if (!Model) throw new Error(`${where}: no validator for ${doc.apiVersion} ${doc.kind}`);
  try {
    new Model(doc).validate();
  } catch (error) {
    throw new Error(`${where}: ${doc.kind} ${doc.metadata?.name}: ${(error as Error).message}`);
  }
}

function parseYaml(text: string, where: string): Doc[] {
  return parseAllDocuments(text).map((document) => {
    if (document.errors.length > 0) throw new Error(`${where}: ${document.errors[0]!.message}`);
    return document.toJS() as Doc;
  });
}

/** kustomize as kubectl embeds it (v5), which takes only relative paths; the machines ship kubectl, and CI runs on one like them. */
function kustomize(dir: string): Doc[] {
  let output: string;
  try {
    output = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const failure = error as NodeJS.ErrnoException & { stderr?: string };
    if (failure.code === 'ENOENT') throw new Error('kubectl (with its built-in kustomize v5) is needed on PATH to build deploy/kubernetes');
    throw new Error(`kubectl kustomize ${dir}: ${failure.stderr ?? failure.message}`);
  }
  return parseYaml(output, dir);
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.yaml'))
    .map((name) => join(dir, name));
}

const find = (docs: Doc[], kind: string, name?: string): Doc => {
  const found = docs.find((doc) => doc.kind === kind && (name === undefined || doc.metadata.name === name));
  if (!found) throw new Error(`no ${kind} ${name ?? ''}`);
  return found;
};
const podSpec = (docs: Doc[], name: string) => find(docs, 'Deployment', name).spec.template.spec;
const portNumber = (container: any, port: string | number) =>
  typeof port === 'number' ? port : container.ports.find((entry: any) => entry.name === port)?.containerPort;

/** The proxy's container, wherever the component put it, and its config as mcp-warden reads it. */
function warden(docs: Doc[], deployment: string) {
  const spec = podSpec(docs, deployment);
  const container = [...(spec.initContainers ?? []), ...spec.containers].find((entry: any) => entry.name === 'mcp-warden');
  const configVolume = spec.volumes.find((volume: any) => volume.name === 'mcp-warden-config');
  const configMap = find(docs, 'ConfigMap', configVolume.configMap.name);
  return { spec, container, config: parseConfigText(configMap.data['config.yaml'], configMap.metadata.name) };
}

/** A memory quantity (Ki, Mi, Gi) in MiB. */
function mebibytes(quantity: string): number {
  const match = /^(\d+)(Ki|Mi|Gi)$/.exec(quantity);
  if (!match) throw new Error(`unexpected memory quantity ${quantity}`);
  return Number(match[1]) * { Ki: 1 / 1024, Mi: 1, Gi: 1024 }[match[2] as 'Ki' | 'Mi' | 'Gi'];
}

/** What every pod with the sidecar needs, whichever way it was added. */
function expectWiredSidecar(docs: Doc[], deployment: string): void {
  const { spec, container, config } = warden(docs, deployment);
  expect(container, 'mcp-warden container').toBeDefined();
  for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
    expect(portNumber(container, container[probe].httpGet.port), probe).toBe(config.admin.port);
  }
  expect(container.readinessProbe.httpGet.path).toBe('/readyz');
  expect(container.livenessProbe.httpGet.path).toBe('/healthz');
  expect(portNumber(container, 'mcp-warden')).toBe(config.listen.port);
  expect(config.listen.host).toBe('0.0.0.0');
  expect(config.admin.host).toBe('0.0.0.0');
  expect(container.resources.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
  expect(container.resources.limits.memory).toEqual(expect.any(String));
  expect(container.securityContext).toMatchObject({
    runAsNonRoot: true,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  });
  // Each mount names a volume of the pod; none uses subPath, which would freeze a Secret at pod start.
  const volumes = new Map(spec.volumes.map((volume: any) => [volume.name, volume]));
  for (const mount of container.volumeMounts) {
    expect(volumes.has(mount.name), mount.name).toBe(true);
    expect(mount.readOnly, mount.name).toBe(true);
    expect(mount.subPath, mount.name).toBeUndefined();
  }
  expect(container.volumeMounts.map((mount: any) => mount.mountPath).sort()).toEqual(['/etc/mcp-warden', '/var/run/secrets/mcp-warden']);
  expect((volumes.get('mcp-warden-secrets') as any).secret.secretName).toBe('mcp-warden-secrets');
  // The image reads /etc/mcp-warden/config.yaml; the ConfigMap's key must be that file.
  expect(Object.keys(find(docs, 'ConfigMap', (volumes.get('mcp-warden-config') as any).configMap.name).data)).toEqual(['config.yaml']);
}

describe('deploy/ manifests', () => {
  const temporary: string[] = [];
  afterAll(() => temporary.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

  it('every resource file validates against the Kubernetes schemas; patches validate inside a minimal Deployment', () => {
    const checked: string[] = [];
    for (const file of yamlFiles(deployDir)) {
      const where = relative(deployDir, file);
      const text = readFileSync(file, 'utf8');
      if (where.endsWith('kustomization.yaml') || where.endsWith('config.yaml')) continue;
      for (const doc of parseYaml(text, where)) {
        if (where.startsWith('kubernetes/components/')) {
          const patch = doc.spec.template.spec;
          validate(
            {
              ...doc,
              spec: {
                selector: { matchLabels: { app: 'x' } },
                template: { metadata: { labels: { app: 'x' } }, spec: { containers: [{ name: 'app', image: 'app' }], ...patch } },
              },
            },
            where,
          );
        } else {
          validate(doc, where);
        }
        checked.push(where);
      }
    }
    expect(checked.length).toBe(17);
  });

  it('the config files the examples ship are valid mcp-warden configs', () => {
    for (const file of yamlFiles(kubernetesDir).filter((path) => path.endsWith('/config.yaml'))) {
      expect(() => parseConfigText(readFileSync(file, 'utf8'), relative(kubernetesDir, file))).not.toThrow();
    }
  });

  it('every kustomization builds, and everything it emits validates', () => {
    const roots = yamlFiles(deployDir)
      .filter((file) => file.endsWith('kustomization.yaml'))
      .map((file) => file.slice(0, -'/kustomization.yaml'.length))
      .filter((dir) => !readFileSync(join(dir, 'kustomization.yaml'), 'utf8').includes('kind: Component'));
    expect(roots.length).toBeGreaterThanOrEqual(5);
    for (const root of roots) for (const doc of kustomize(root)) validate(doc, relative(deployDir, root));
  });

  it('the complete example: the MCP server on loopback, the proxy its only door, monitored and fenced', () => {
    const docs = kustomize(join(kubernetesDir, 'example/sidecar'));
    expectWiredSidecar(docs, 'legacy-mcp');
    const { spec, config } = warden(docs, 'legacy-mcp');
    expect(spec.containers.map((container: any) => container.name).sort()).toEqual(['mcp-server', 'mcp-warden']);
    const server = spec.containers.find((container: any) => container.name === 'mcp-server');
    expect(server.env).toContainEqual({ name: 'HOST', value: '127.0.0.1' });
    // upstream.url is optional since upstream.command exists; this example's server is an HTTP one.
    expect(new URL(config.upstream.url ?? 'missing:').hostname).toBe('127.0.0.1');
    expect(spec.automountServiceAccountToken).toBe(false);
    expect(find(docs, 'Deployment', 'legacy-mcp').spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
    expect(spec.terminationGracePeriodSeconds).toBeGreaterThan(config.lifecycle.shutdown_grace / 1000);

    const service = find(docs, 'Service', 'legacy-mcp');
    expect(service.spec.ports.map((port: any) => port.targetPort)).toEqual([config.listen.port]);
    const metricsService = find(docs, 'Service', 'legacy-mcp-warden-metrics');
    expect(metricsService.spec.ports.map((port: any) => port.targetPort)).toEqual([config.admin.port]);
    const monitor = find(docs, 'ServiceMonitor');
    expect(metricsService.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    expect(metricsService.spec.ports.map((port: any) => port.name)).toContain(monitor.spec.endpoints[0].port);
    expect(find(docs, 'Secret', 'mcp-warden-secrets').metadata.name).toBe('mcp-warden-secrets');
    find(docs, 'PrometheusRule', 'mcp-warden');

    const policy = find(docs, 'NetworkPolicy');
    const allowedPorts = policy.spec.ingress.flatMap((rule: any) => rule.ports.map((port: any) => port.port));
    expect(allowedPorts.sort()).toEqual([config.listen.port, config.admin.port].sort());
    expect(policy.spec.policyTypes).toEqual(['Ingress', 'Egress']);
  });

  it('the native sidecar example runs the same container as a restartable init container', () => {
    const classic = warden(kustomize(join(kubernetesDir, 'example/sidecar')), 'legacy-mcp');
    const native = warden(kustomize(join(kubernetesDir, 'example/native-sidecar')), 'legacy-mcp');
    expect(native.spec.containers.map((container: any) => container.name)).toEqual(['mcp-server']);
    expect(native.spec.initContainers.map((container: any) => container.name)).toEqual(['mcp-warden']);
    expect(native.container).toEqual({ ...classic.container, restartPolicy: 'Always' });
    expect(native.spec.volumes).toEqual(classic.spec.volumes);
  });

  it('the components add the sidecar to an existing Deployment picked by name, leaving the rest of the pod as it was', () => {
    const legacy = kustomize(join(kubernetesDir, 'existing-deployment/legacy'));
    const legacyServer = podSpec(legacy, 'weather-mcp').containers[0];

    const variants = {
      native: kustomize(join(kubernetesDir, 'existing-deployment/with-mcp-warden')),
      classic: (() => {
        // The same overlay with the classic component, built from a scratch copy of its kustomization.
        const dir = mkdtempSync(join(tmpdir(), 'warden-kustomize-'));
        temporary.push(dir);
        const overlay = join(kubernetesDir, 'existing-deployment/with-mcp-warden');
        writeFileSync(
          join(dir, 'kustomization.yaml'),
          [
            `resources: [${relative(dir, join(overlay, '../legacy'))}]`,
            `components: [${relative(dir, join(overlay, 'select'))}, ${relative(dir, join(kubernetesDir, 'components/sidecar'))}]`,
            'configMapGenerator: [{ name: mcp-warden-config, files: [config.yaml] }]',
          ].join('\n'),
        );
        writeFileSync(join(dir, 'config.yaml'), readFileSync(join(overlay, 'config.yaml')));
        return kustomize(dir);
      })(),
    };
    for (const [variant, docs] of Object.entries(variants)) {
      expectWiredSidecar(docs, 'weather-mcp');
      const spec = podSpec(docs, 'weather-mcp');
      const names = [...(spec.initContainers ?? []), ...spec.containers].map((container: any) => container.name).sort();
      expect(names, variant).toEqual(['mcp-warden', 'server']);
      expect(spec.containers.find((container: any) => container.name === 'server'), variant).toEqual(legacyServer);
      expect(find(docs, 'Deployment', 'weather-mcp').metadata.annotations).toEqual({ 'mcp-warden.dev/inject': 'true' });
      expect(find(docs, 'Service', 'weather-mcp').spec.ports[0].targetPort, variant).toBe(warden(docs, 'weather-mcp').config.listen.port);
    }
    expect(podSpec(variants.native, 'weather-mcp').initContainers[0].restartPolicy).toBe('Always');
  });

  it('a Deployment without the annotation is left alone', () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-kustomize-'));
    temporary.push(dir);
    writeFileSync(
      join(dir, 'kustomization.yaml'),
      `resources: [${relative(dir, join(kubernetesDir, 'existing-deployment/legacy'))}]\ncomponents: [${relative(dir, join(kubernetesDir, 'components/sidecar'))}]\n`,
    );
    const docs = kustomize(dir);
    expect(podSpec(docs, 'weather-mcp')).toEqual(podSpec(kustomize(join(kubernetesDir, 'existing-deployment/legacy')), 'weather-mcp'));
  });

  it('the stdio example: mcp-warden and the server in one container, the image it names, affinity for its sessions', () => {
    const docs = kustomize(join(kubernetesDir, 'stdio'));
    expectWiredSidecar(docs, 'everything-mcp');
    const { spec, container, config } = warden(docs, 'everything-mcp');
    expect(spec.containers.map((entry: any) => entry.name)).toEqual(['mcp-warden']);
    expect(spec.initContainers).toBeUndefined();
    expect(spec.automountServiceAccountToken).toBe(false);
    expect(config.upstream.url).toBeUndefined();
    const stdio = config.upstream.stdio;
    if (!stdio) throw new Error('the stdio example has no upstream.command');
    // On SIGTERM: requests drain, then each child gets SIGTERM and, after kill_grace, SIGKILL; all before the kubelet's SIGKILL.
    expect(spec.terminationGracePeriodSeconds).toBeGreaterThan((config.lifecycle.shutdown_grace + stdio.kill_grace) / 1000);
    // The children count against the container's memory limit: room for mcp-warden and max_processes of them.
    expect(mebibytes(container.resources.limits.memory)).toBeGreaterThanOrEqual(256 + 64 * stdio.max_processes);

    // Every secret the children get is a file of the mounted Secret, under a key the Secret has.
    const secretsMount = container.volumeMounts.find((mount: any) => mount.name === 'mcp-warden-secrets').mountPath;
    const secret = find(docs, 'Secret', 'mcp-warden-secrets');
    const secretKeys = Object.keys({ ...secret.data, ...secret.stringData });
    const refs = [
      ...(config.upstream.credential.type === 'env' ? [config.upstream.credential.value] : []),
      ...Object.values(stdio.env).flatMap((value) => (value.kind === 'secret' ? [value.ref] : [])),
    ];
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) {
      expect(ref.kind).toBe('file');
      if (ref.kind !== 'file') continue;
      expect(ref.path.startsWith(`${secretsMount}/`), ref.path).toBe(true);
      expect(secretKeys).toContain(ref.path.slice(secretsMount.length + 1));
    }
    // The example server's get-env tool hands out its environment, credential included: not to every user.
    const getEnv = config.policy.rules.find((rule: any) => rule.match.tool === 'get-env');
    expect(getEnv?.scopes).toEqual(['mcp:admin']);

    // The image the Deployment runs is Dockerfile.example's: the program and cwd the config names are where it installs
    // the server, at a pinned version, and it ends as the base image does (`node`, in /app for dist/cli.js).
    const dockerfile = readFileSync(join(deployDir, 'stdio/Dockerfile.example'), 'utf8');
    expect(dockerfile).toMatch(/^ARG MCP_WARDEN_IMAGE=\S+$/m);
    expect(dockerfile).toMatch(/^FROM \$\{MCP_WARDEN_IMAGE\}$/m);
    expect(dockerfile).toMatch(/^ARG SERVER_EVERYTHING_VERSION=\d+\.\d+\.\d+$/m);
    const install = dockerfile.indexOf('RUN npm install --omit=dev');
    expect(install).toBeGreaterThan(0);
    expect(dockerfile.slice(install)).toMatch(/^ +"@modelcontextprotocol\/server-everything@\$\{SERVER_EVERYTHING_VERSION\}"/m);
    const workdirs = [...dockerfile.matchAll(/^WORKDIR (\S+)$/gm)];
    const installDir = workdirs.filter((match) => match.index < install).at(-1)?.[1];
    expect(installDir).toBe('/srv/mcp-server');
    expect(workdirs.at(-1)?.[1]).toBe('/app');
    expect([...dockerfile.matchAll(/^USER (\S+)$/gm)].at(-1)?.[1]).toBe('node');
    expect(stdio.cwd).toBe(installDir);
    expect(stdio.command[0]).toBe('/usr/local/bin/node');
    expect(stdio.command[1]).toBe(`${installDir}/node_modules/@modelcontextprotocol/server-everything/dist/index.js`);

    // The Service and the Ingress lead to the proxy port only; the Ingress serves the resource's host and path.
    const service = find(docs, 'Service', 'everything-mcp');
    expect(service.spec.ports.map((port: any) => port.targetPort)).toEqual([config.listen.port]);
    const ingress = find(docs, 'Ingress', 'everything-mcp');
    const resource = new URL(config.resource.url);
    const rule = ingress.spec.rules.find((entry: any) => entry.host === resource.hostname);
    const path = rule.http.paths.find((entry: any) => resource.pathname.startsWith(entry.path));
    expect(path.pathType).toBe('Prefix');
    expect(`/.well-known/oauth-protected-resource${resource.pathname}`.startsWith(path.path)).toBe(true);
    expect(path.backend.service.name).toBe(service.metadata.name);
    expect(service.spec.ports.map((port: any) => port.name)).toContain(path.backend.service.port.name);
    expect(ingress.spec.tls.flatMap((entry: any) => entry.hosts)).toContain(resource.hostname);

    // A session is a process in one pod. With several replicas every request of a session must reach the pod that
    // answered its initialize, which carries no Mcp-Session-Id: a hash key that uses the header cannot do that.
    if (find(docs, 'Deployment', 'everything-mcp').spec.replicas > 1) {
      const hashKey = ingress.metadata.annotations?.['nginx.ingress.kubernetes.io/upstream-hash-by'];
      expect(hashKey, 'upstream-hash-by').toEqual(expect.any(String));
      expect(hashKey).not.toMatch(/mcp_session_id/i);
      expect(service.spec.sessionAffinity).toBe('ClientIP');
    }

    const policy = find(docs, 'NetworkPolicy', 'everything-mcp');
    const allowedPorts = policy.spec.ingress.flatMap((entry: any) => entry.ports.map((port: any) => port.port));
    expect(allowedPorts.sort()).toEqual([config.listen.port, config.admin.port].sort());
    expect(policy.spec.policyTypes).toEqual(['Ingress', 'Egress']);
  });
});
