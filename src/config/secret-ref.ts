/**
 * A secret is configured only as a reference to where it lives, never as its value: the YAML is a
 * ConfigMap that many people can read, the value belongs in a Secret (env or mounted file).
 */
export type SecretRef = { readonly kind: 'env'; readonly name: string } | { readonly kind: 'file'; readonly path: string };

const SECRET_REF = /^\$\{(env|file):([^}]+)\}$/;

export function parseSecretRef(text: string): SecretRef | undefined {
  const match = SECRET_REF.exec(text.trim());
  if (!match) return undefined;
  const [, kind, target] = match as unknown as [string, 'env' | 'file', string];
  return kind === 'env' ? { kind, name: target } : { kind, path: target };
}

export function describeSecretRef(ref: SecretRef): string {
  return ref.kind === 'env' ? `environment variable ${ref.name}` : `file ${ref.path}`;
}
