"""Build a small provisioned county for tests: state, CA, devices, broker folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from provisioning import broker_config
from provisioning.bundle import DeviceSpec
from provisioning.commands import ca_init, open_db
from provisioning.enroll import Enroller
from provisioning.state import State
from sim.ports import free_port


@dataclass
class Device:
    device_id: str
    group: str
    bundle: Path

    @property
    def tls(self) -> dict[str, Path]:
        return {
            "ca": self.bundle / "tls" / "ca.crt",
            "cert": self.bundle / "tls" / "device.crt",
            "key": self.bundle / "tls" / "device.key",
        }


@dataclass
class County:
    state: State
    engine: Engine
    devices: dict[str, Device]  # household -> device
    broker_dir: Path
    port: int

    def identity(self, cn: str) -> dict[str, Path]:
        return {"ca": self.state.ca_cert, "cert": self.state.client_cert(cn), "key": self.state.client_key(cn)}

    def conf(self) -> str:
        return (self.broker_dir / "mosquitto.conf").read_text()


def spec(household: str, group: str, township: str = "01", village: str = "和平村") -> DeviceSpec:
    return DeviceSpec(township=township, township_name="泉山镇", village=village, household=household, group=group)


def build_county(
    root: Path,
    db_url: str | None = None,
    households: tuple[tuple[str, str], ...] = (("HA", "g1"), ("HB", "g1"), ("HC", "g2")),
) -> County:
    state = State(root / "state")
    ca_init(state, broker_host="localhost", hostnames=[], broker_port=8883, ntp_server=None, hub_cn="hub", force=False)
    engine = open_db(state, db_url)
    outcome = Enroller(state, engine).run([(None, spec(h, g)) for h, g in households])
    assert not outcome.errors, outcome.errors
    devices = {
        r.household: Device(r.device_id, dict(households)[r.household], state.bundle_dir(r.device_id))
        for r in outcome.results
    }
    port = free_port()
    out = root / "broker"
    broker_config.generate(state, engine, out, port=port, bind="127.0.0.1")
    return County(state, engine, devices, out, port)
