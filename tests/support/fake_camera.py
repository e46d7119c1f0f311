"""A fake picamera2 (no camera or libcamera here): the requests and buffers the agent's camera port reads."""

from __future__ import annotations

from typing import Any

import numpy as np


class FakeRequest:
    def __init__(self, cam: FakeCamera, n: int) -> None:
        self.cam, self.n, self.released = cam, n, False

    def make_array(self, name: str) -> np.ndarray:
        assert not self.released, "used after release"
        self.cam.made.append(name)
        w, h = self.cam.config[name]["size"]
        if name == "lores":
            stride = w + 32  # padded rows, as the ISP does
            buf = np.full((h * 3 // 2, stride), 99, np.uint8)  # 99 marks padding
            buf[:h, :w] = self.n  # Y
            flat = buf.reshape(-1)
            cs = stride // 2
            u = flat[stride * h : stride * h + cs * h // 2].reshape(h // 2, cs)
            v = flat[stride * h + cs * h // 2 : stride * h + cs * h].reshape(h // 2, cs)
            u[:, : w // 2] = 128 + self.cam.colour
            v[:, : w // 2] = 128 - self.cam.colour
            return buf
        main = np.zeros((h, w, 3), np.uint8)
        main[..., 0] = 10  # first byte: B for RGB888, R for BGR888
        main[..., 2] = 200
        return main

    def release(self) -> None:
        self.released = True


class FakeCamera:
    def __init__(self, num: int) -> None:
        self.num = num
        self.config: dict[str, Any] = {}
        self.calls: list[str] = []
        self.made: list[str] = []
        self.requests: list[FakeRequest] = []
        self.colour = 30

    def create_video_configuration(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append("create")
        return kwargs

    def configure(self, config: dict[str, Any]) -> None:
        self.config = config
        self.calls.append("configure")

    def start(self) -> None:
        self.calls.append("start")

    def capture_request(self) -> FakeRequest:
        req = FakeRequest(self, len(self.requests))
        self.requests.append(req)
        return req

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")
