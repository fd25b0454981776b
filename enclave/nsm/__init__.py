# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The Nitro Secure Module: the `/dev/nsm` device and a simulator behind one interface."""
