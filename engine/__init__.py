"""Orchestra's engine: personas, modes, router, investigations, memory and model providers.

It knows no chat platform: adapters hand it `Task`s and post the `Reply`s it produces.
"""
