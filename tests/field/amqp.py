"""The test's side of RabbitMQ, with the app's own client library (aio-pika):

  amqp.py purge            empty the app's queue
  amqp.py publish UUID     publish one acquisition.created event, as the API does
  amqp.py stat             print "MESSAGES CONSUMERS" as the broker counts them

Connection settings come from the same RABBITMQ_* variables the app reads."""

import asyncio
import json
import os
import sys

import aio_pika

QUEUE = "smartem_backend"


async def main(argv):
    url = "amqp://{}:{}@{}:{}/".format(
        os.environ["RABBITMQ_USER"],
        os.environ["RABBITMQ_PASSWORD"],
        os.environ["RABBITMQ_HOST"],
        os.environ["RABBITMQ_PORT"],
    )
    conn = await aio_pika.connect(url)
    try:
        channel = await conn.channel()
        queue = await channel.declare_queue(QUEUE, durable=True)
        if argv[0] == "purge":
            await queue.purge()
        elif argv[0] == "publish":
            body = {"event_type": "acquisition.created", "uuid": argv[1], "name": "field-test"}
            await channel.default_exchange.publish(
                aio_pika.Message(
                    body=json.dumps(body).encode(),
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=QUEUE,
            )
        elif argv[0] == "stat":
            result = queue.declaration_result
            print(result.message_count, result.consumer_count)
        else:
            raise SystemExit(f"unknown command {argv[0]!r}")
    finally:
        await conn.close()


asyncio.run(main(sys.argv[1:]))
