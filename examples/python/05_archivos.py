# /// script
# dependencies = ["aiofiles"]
# ///
#
# The seed's aiofiles stories: section 5.8.3 of tutorial 001 (write three
# files with gather, then read them back), its section 5.9.3 (`async with`),
# and tutorial 000's read_all_async. aiofiles is not in the standard
# library: tests/examples.rs installs the dependencies above (inline script
# metadata, PEP 723) in a venv under the cargo target directory.
#
# Changes, none to the stories' logic:
# - The files go to a fresh temporary directory, made the working
#   directory, so the names print as in the seed.
# - aiofiles runs each call on asyncio's default executor, whose threads
#   finish in any order: on most runs the "Escribió en" lines and the
#   "Contenido de" blocks came out in another order. main_5_8_3 gives its
#   loop a one-thread default executor: the calls run in the order they
#   were made, and the lines come out in gather's order on every run. (The
#   Rust port does the same with bucle::set_max_workers(1).)
# - Both sections define write_file and main: 5.9.3's are renamed
#   write_file_5_9_3 and main_5_9_3, 5.8.3's main is main_5_8_3, and
#   tutorial 000's main is main_leer.
import asyncio
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor

import aiofiles

# 5.8.3 -------------------------------------------------------------------

async def read_file(file_path):
    async with aiofiles.open(file_path, mode='r') as f:
        contents = await f.read()
        print(f"Contenido de {file_path}:\n{contents}\n")

async def write_file(file_path, content):
    async with aiofiles.open(file_path, mode='w') as f:
        await f.write(content)
        print(f"Escribió en {file_path}")

async def main_5_8_3():
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))
    await asyncio.gather(
        write_file('file1.txt', 'Contenido del archivo 1'),
        write_file('file2.txt', 'Contenido del archivo 2'),
        write_file('file3.txt', 'Contenido del archivo 3'),
    )
    await asyncio.gather(
        read_file('file1.txt'),
        read_file('file2.txt'),
        read_file('file3.txt'),
    )

# 5.9.3 -------------------------------------------------------------------

async def write_file_5_9_3(file_path, content):
    async with aiofiles.open(file_path, mode='w') as f:
        await f.write(content)
    print(f"Escribió en {file_path}")

async def main_5_9_3():
    await write_file_5_9_3('output.txt', '¡Hola, asyncio!')

# Tutorial 000: read_all_async ---------------------------------------------

async def read_file_async(filepath):
    async with aiofiles.open(filepath, 'r') as file:
        return await file.read()

async def read_all_async(filepaths):
    tasks = [read_file_async(filepath) for filepath in filepaths]
    return await asyncio.gather(*tasks)

async def main_leer():
    filepaths = ['file1.txt', 'file2.txt']
    data = await read_all_async(filepaths)
    print(data)

if __name__ == "__main__":
    inicio = os.getcwd()
    carpeta = tempfile.mkdtemp(prefix="bucle-05_archivos-")
    os.chdir(carpeta)
    try:
        asyncio.run(main_5_8_3())
        asyncio.run(main_5_9_3())
        asyncio.run(main_leer())
    finally:
        os.chdir(inicio)
        shutil.rmtree(carpeta)
