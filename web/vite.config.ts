/// <reference types="vitest/config" />
import vue from '@vitejs/plugin-vue'
import Components from 'unplugin-vue-components/vite'
import { ElementPlusResolver } from 'unplugin-vue-components/resolvers'
import { defineConfig } from 'vite'

// Element Plus components are imported where used (with their CSS), so a page loads only what
// it shows.
export default defineConfig({
  plugins: [vue(), Components({ resolvers: [ElementPlusResolver()], dts: false })],
  // `npm run dev` and `vite preview` (scripts/console-e2e --preview) proxy the API to `wework serve`.
  server: { proxy: { '/api': process.env.WEWORK_API ?? 'http://127.0.0.1:8080' } },
  build: { outDir: 'dist', emptyOutDir: true, assetsInlineLimit: 0, chunkSizeWarningLimit: 600 },
  test: { environment: 'happy-dom', include: ['src/**/*.test.ts'] },
})
