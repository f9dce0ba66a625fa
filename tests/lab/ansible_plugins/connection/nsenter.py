"""An Ansible connection into a root booted with systemd-nspawn (tests/lab/booted.py): commands run with
nsenter in its namespaces, files are copied through /proc/PID/root. For the role's test only."""

from __future__ import annotations

import shutil
import subprocess

from ansible.plugins.connection import ConnectionBase

DOCUMENTATION = """
name: nsenter
short_description: run inside a booted root's namespaces (nsenter -t PID -a)
description: For kahooks' role test. Needs root on the controller.
author: kahooks
options:
  pid:
    description: the root's PID 1 as the host sees it
    vars:
      - name: ansible_nsenter_pid
"""


class Connection(ConnectionBase):
    transport = "nsenter"
    has_pipelining = True

    def _connect(self) -> Connection:
        self._connected = True
        return self

    def exec_command(self, cmd: str, in_data: bytes | None = None, sudoable: bool = True) -> tuple[int, bytes, bytes]:
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        argv = ["nsenter", "-t", str(self.get_option("pid")), "-a", "-r", "-w", "/bin/sh", "-c", cmd]
        done = subprocess.run(argv, input=in_data or b"", capture_output=True, timeout=600,
                              env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/root"})
        return done.returncode, done.stdout, done.stderr

    def _inside(self, path: str) -> str:
        return f"/proc/{self.get_option('pid')}/root/{path.lstrip('/')}"

    def put_file(self, in_path: str, out_path: str) -> None:
        super().put_file(in_path, out_path)
        shutil.copyfile(in_path, self._inside(out_path))

    def fetch_file(self, in_path: str, out_path: str) -> None:
        super().fetch_file(in_path, out_path)
        shutil.copyfile(self._inside(in_path), out_path)

    def close(self) -> None:
        self._connected = False
