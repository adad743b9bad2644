"""The baseline for bench_server.py: a KServe v2 ModelInfer server written the way a user would
with grpc.aio and onnxruntime (tritonclient's generated stubs, one InferenceSession, the model
run inside the handler). Usage: python naive_server.py MODEL.onnx PORT
"""

from __future__ import annotations

import asyncio
import signal
import sys

import grpc
import numpy as np
import onnxruntime as ort
from tritonclient.grpc import service_pb2, service_pb2_grpc


class Servicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, path: str) -> None:
        options = ort.SessionOptions()
        # One thread, as the engine is configured: ORT's default pool spins on 2 cores.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    async def ModelInfer(self, request, context):
        inputs = {}
        for i, tensor in enumerate(request.inputs):
            array = np.frombuffer(request.raw_input_contents[i], dtype=np.float32)
            inputs[tensor.name] = array.reshape(list(tensor.shape))
        outputs = self.session.run(None, inputs)
        response = service_pb2.ModelInferResponse(
            model_name=request.model_name, model_version="1", id=request.id)
        for meta, value in zip(self.session.get_outputs(), outputs):
            response.outputs.add(name=meta.name, datatype="FP32", shape=list(value.shape))
            response.raw_output_contents.append(value.astype(np.float32).tobytes())
        return response


async def main(path: str, port: int) -> None:
    server = grpc.aio.server()
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(Servicer(path), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"ready {bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
