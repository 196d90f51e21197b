// A machine: physical memory, its memory-encryption engine and the profile
// they were built for. Descriptors let a worker thread attach as one more CPU.
import { MemoryEncryptionEngine, type EngineDescriptor } from './engine.js';
import { PhysicalMemory, type MemoryConfig } from './memory.js';
import { getProfile, type HardwareProfile } from './profiles.js';

export interface MachineConfig {
  readonly profile: string;
  readonly backend: string;
  readonly memory: MemoryConfig;
  /** Simulated CPUs (worker threads) that will touch memory. */
  readonly nrCpus: number;
}

export interface MachineDescriptor {
  readonly engine: EngineDescriptor;
  readonly nrCpus: number;
}

export class Machine {
  readonly profile: HardwareProfile;
  readonly memory: PhysicalMemory;
  readonly engine: MemoryEncryptionEngine;
  readonly nrCpus: number;
  readonly cpu: number;

  private constructor(engine: MemoryEncryptionEngine, nrCpus: number) {
    this.engine = engine;
    this.memory = engine.memory;
    this.profile = engine.profile;
    this.nrCpus = nrCpus;
    this.cpu = engine.cpu;
  }

  static create(cfg: MachineConfig): Machine {
    getProfile(cfg.profile); // fail early on an unknown name, before allocating memory
    const memory = PhysicalMemory.create(cfg.memory);
    return new Machine(MemoryEncryptionEngine.create(memory, cfg.profile, cfg.backend, cfg.nrCpus), cfg.nrCpus);
  }

  static attach(d: MachineDescriptor, cpu: number): Machine {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= d.nrCpus)
      throw new RangeError(`cpu: expected an integer in [0, ${d.nrCpus - 1}], got ${cpu}`);
    return new Machine(MemoryEncryptionEngine.attach(d.engine, cpu), d.nrCpus);
  }

  descriptor(): MachineDescriptor {
    return { engine: this.engine.descriptor(), nrCpus: this.nrCpus };
  }

  /** Power off: the DAX region goes to `daxPath`, RAM and every programmed key are lost. */
  powerOff(daxPath: string): void {
    this.memory.powerOffDax(daxPath);
    this.engine.resetKeys();
  }

  /** Power on: the DAX region comes back from `daxPath` (ciphertext; keys must be programmed again). */
  powerOn(daxPath: string): boolean {
    return this.memory.powerOnDax(daxPath);
  }
}
