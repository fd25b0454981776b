# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The owner's side: keygen, pack, inspect, verify, build-eif, policy, publish."""
