// Compress a prompt with tersify's `tersify_compress` Triton model from Node.js, using only
// Triton's published gRPC protocol (proto/grpc_service.proto and proto/model_config.proto,
// copied from github.com/triton-inference-server/common at 83adf7cf, BSD-3-Clause).
//
//   npm install                      # @grpc/grpc-js and @grpc/proto-loader, pinned
//   node compress.js grpc://127.0.0.1:8001 ../seed_request.json > answer.json
//
// stdout gets the answer, byte for byte what `tersify compress` prints; stderr gets the two
// counts. A bad request exits 2 with tersify's one-line message, any other failure 1.
"use strict";

const fs = require("fs");
const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

function main(argv) {
  const [url, file] = argv;
  const match = /^grpc:\/\/([^/?#]+:\d+)\/?([A-Za-z0-9_.-]*)$/.exec(url || "");
  if (!match || !file) {
    process.stderr.write("usage: node compress.js grpc://HOST:PORT[/MODEL] REQUEST.json\n");
    return process.exit(2);
  }
  const [, address, model] = match;
  const request = file === "-" ? fs.readFileSync(0) : fs.readFileSync(file);

  const protoDir = path.join(__dirname, "proto");
  const definition = protoLoader.loadSync(path.join(protoDir, "grpc_service.proto"), {
    includeDirs: [protoDir],
    keepCase: true,
    longs: String,
    defaults: true,
  });
  const { inference } = grpc.loadPackageDefinition(definition);
  const client = new inference.GRPCInferenceService(address, grpc.credentials.createInsecure());

  // The JSON request travels as one BYTES element of shape [1, 1] (a batch of one). In
  // raw_input_contents a BYTES tensor is each element's length (4 bytes, little-endian)
  // followed by its bytes.
  const length = Buffer.alloc(4);
  length.writeUInt32LE(request.length, 0);
  const message = {
    model_name: model || "tersify_compress",
    inputs: [{ name: "REQUEST", datatype: "BYTES", shape: [1, 1] }],
    raw_input_contents: [Buffer.concat([length, request])],
  };
  const deadline = new Date(Date.now() + 300 * 1000);
  client.ModelInfer(message, { deadline }, (error, response) => {
    client.close();
    if (error) {
      process.stderr.write(`tersify: error: ${error.details}\n`);
      return process.exit(error.code === grpc.status.INVALID_ARGUMENT ? 2 : 1);
    }
    const output = (name) => response.raw_output_contents[
      response.outputs.findIndex((o) => o.name === name)
    ];
    // RESPONSE is one BYTES element: its 4-byte length, then the answer.
    const answer = output("RESPONSE");
    process.stdout.write(answer.subarray(4, 4 + answer.readUInt32LE(0)));
    const origin = output("ORIGIN_TOKENS").readBigInt64LE(0);
    const compressed = output("COMPRESSED_TOKENS").readBigInt64LE(0);
    process.stderr.write(`origin_tokens=${origin} compressed_tokens=${compressed}\n`);
  });
}

main(process.argv.slice(2));
