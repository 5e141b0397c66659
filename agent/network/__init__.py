"""The network: its PKI (root CA, identity certificates), the signed network map, local bootstrap.

A node believes an identity only when its certificate chains to the network's root; everything here
exists to make that check possible and to set up a network on which it passes.
"""
