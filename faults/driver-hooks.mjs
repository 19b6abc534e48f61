// Module resolve hook registered by driver.mjs for `--driver 3`: the bare specifier 'postgres' (and
// 'postgres/...') resolves to the devDependency 'postgres-3' (npm:postgres@3.4.x) instead of 4.x.
export async function resolve(specifier, context, next) {
  if (specifier === 'postgres' || specifier.startsWith('postgres/')) {
    return next(`postgres-3${specifier.slice('postgres'.length)}`, context);
  }
  return next(specifier, context);
}
