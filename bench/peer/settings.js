// Node-RED settings for the peer baseline (docs/bench/compare.md). Started by
// scripts/bench-compare.sh with a throw-away user directory; loopback only, no editor, no admin
// API, no HTTP nodes: the flow is all it runs.
//   PEER_USER_DIR      temp directory holding flows.json (copied from bench/peer/flows.json)
//   PEER_CREDENTIALS   the devices' credentials JSON (tenwatch admin seed-demo); only the
//                      device → cluster and label mapping is used: the peer checks no password
//   PEER_MQTT_PORT     Mosquitto's port on 127.0.0.1 (read by flows.json as ${PEER_MQTT_PORT})
//   PEER_HTTP_PORT     the (unused) HTTP listener, bound to 127.0.0.1
//   PEER_STORE_FILE    (peer-durable) a file each press is appended to, and fdatasync'd, before
//                      its cluster alert and ack go out: what a Node-RED user adds for presses
//                      that survive a crash; unset, nothing is stored
const fs = require("fs");
const path = require("path");
const net = require("net");

// TCP_NODELAY on Node-RED's MQTT connection, as on every other socket in the comparison
// (Mosquitto: set_tcp_nodelay; tenwatch's rumqttd is patched; the sim sets it). mqtt.js opens
// its socket with net.createConnection and leaves Nagle on, so an ack written right behind a
// cluster alert would wait for the broker's delayed ACK. PEER_TCP_NODELAY=0 measures it as shipped.
if (process.env.PEER_TCP_NODELAY !== "0") {
    const createConnection = net.createConnection;
    net.createConnection = function (...args) {
        const socket = createConnection.apply(this, args);
        socket.setNoDelay(true);
        return socket;
    };
}

const raw = JSON.parse(fs.readFileSync(process.env.PEER_CREDENTIALS, "utf8"));
const list = Array.isArray(raw) ? raw : raw.devices;
const devices = {};
for (const d of list) {
    devices[d.device] = { cluster: d.cluster, label: d.label || d.household };
}

// One JSON line a press, synchronously on disk before the flow's function returns. The flow
// calls it when it is there (`global.get('store')`).
let store;
if (process.env.PEER_STORE_FILE) {
    const fd = fs.openSync(process.env.PEER_STORE_FILE, "a");
    store = (press) => {
        fs.writeSync(fd, JSON.stringify(press) + "\n");
        fs.fdatasyncSync(fd);
    };
}

module.exports = {
    userDir: process.env.PEER_USER_DIR,
    flowFile: path.join(process.env.PEER_USER_DIR, "flows.json"),
    credentialSecret: false,
    uiHost: "127.0.0.1",
    uiPort: Number(process.env.PEER_HTTP_PORT || 1880),
    httpAdminRoot: false,
    httpNodeRoot: false,
    disableEditor: true,
    functionGlobalContext: { devices, store },
    logging: { console: { level: "warn", metrics: false, audit: false } },
    telemetry: { enabled: false },
    diagnostics: { enabled: false },
    runtimeState: { enabled: false },
    externalModules: { autoInstall: false, palette: { allowInstall: false }, modules: { allowInstall: false } },
};
