/** esbuild bundles imported stylesheets into app.css; for TypeScript they are side-effect modules. */
declare module "*.css";
