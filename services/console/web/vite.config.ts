import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The console serves dist/ itself (services/console/app.py); nothing is fetched from elsewhere.
export default defineConfig({
  plugins: [react()],
  base: "/",
  build: { outDir: "dist", assetsDir: "assets", sourcemap: false, chunkSizeWarningLimit: 1024 },
});
