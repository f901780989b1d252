// src/cli/preload.cjs: builds node:http's ES namespace while its lazy WebSocket getters are held back.
import 'node:http';
